"""What every vpd libvirt XML model shares: lenient parsing, clean output, flag elements."""
from __future__ import annotations

from typing import Annotated, Any

from lxml import etree
from pydantic_xml import BaseXmlModel, XmlFieldSerializer, XmlFieldValidator
from pydantic_xml.element import XmlElementReader, XmlElementWriter


class LibvirtXml(BaseXmlModel, search_mode="unordered"):
    """Base of all vpd's libvirt XML models.

    libvirt writes elements in its own canonical order and adds many that vpd does not model
    (alias, address, seclabel, controllers...). So fields are found by tag wherever they sit
    ('unordered' search) and unmodelled elements are skipped (pydantic's default extra='ignore').
    The flip side: re-serializing a parsed object drops what was skipped, so these models are
    for reading libvirt's state and writing vpd's own definitions, not for editing foreign XML.
    """

    # pydantic-xml writes None as an empty attribute or element unless told otherwise, but libvirt
    # reads type='' as a (wrong) value, never as "not given"; so leaving None out is the default.
    def to_xml_tree(
        self, *, skip_empty: bool = False, exclude_none: bool = True, exclude_unset: bool = False
    ) -> etree._Element:
        return super().to_xml_tree(skip_empty=skip_empty, exclude_none=exclude_none, exclude_unset=exclude_unset)

    def to_xml(
        self, *, skip_empty: bool = False, exclude_none: bool = True, exclude_unset: bool = False, **kwargs: Any
    ) -> str | bytes:
        return super().to_xml(
            skip_empty=skip_empty, exclude_none=exclude_none, exclude_unset=exclude_unset, **kwargs
        )

    def to_xml_string(self) -> str:
        """Pretty XML ready for libvirt's define calls."""
        return self.to_xml(pretty_print=True, encoding="unicode")


def _read_flag(model: type[BaseXmlModel], element: XmlElementReader, field_name: str) -> bool:
    return element.pop_element(field_name, model.__xml_search_mode__) is not None


def _write_flag(model: BaseXmlModel, element: XmlElementWriter, present: Any, field_name: str) -> None:
    if present:
        element.append_element(element.make_element(field_name, nsmap=None))


Flag = Annotated[bool, XmlFieldValidator(_read_flag), XmlFieldSerializer(_write_flag)]
"""An empty element whose presence means true, like ``<readonly/>`` or ``<acpi/>``.

The element's tag is the field's name.
"""
