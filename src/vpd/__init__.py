"""vpd: KVM/libvirt infrastructure as software."""
__version__ = "0.1.0"
