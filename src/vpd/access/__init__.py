"""Temporary, revocable SSH access between hosts (see grants.py)."""
from .grants import Grant, grant, list_grants, revoke, temporary_access
from .ttl import parse_ttl

__all__ = ["Grant", "grant", "list_grants", "parse_ttl", "revoke", "temporary_access"]
