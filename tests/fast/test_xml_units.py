"""libvirt unit attributes read as libvirt's virScaleInteger reads them."""
from __future__ import annotations

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from vpd.xml import Domain, MemorySize, StorageVolume, lab_guest_domain, to_bytes, unit_scale
from vpd.xml.units import MAX_BYTES

# Written out by hand from libvirt's documentation rather than derived like the code is.
SCALES = {
    "b": 1, "byte": 1, "bytes": 1,
    "k": 1024, "KiB": 1024, "KB": 1000,
    "M": 1024**2, "MiB": 1024**2, "MB": 1000**2,
    "G": 1024**3, "GiB": 1024**3, "GB": 1000**3,
    "T": 1024**4, "TiB": 1024**4, "TB": 1000**4,
    "P": 1024**5, "PiB": 1024**5, "PB": 1000**5,
    "E": 1024**6, "EiB": 1024**6, "EB": 1000**6,
}

units = st.sampled_from(sorted(SCALES))


@st.composite
def any_casing(draw, unit_strategy):
    unit = draw(unit_strategy)
    flips = draw(st.lists(st.booleans(), min_size=len(unit), max_size=len(unit)))
    return unit, "".join(c.swapcase() if flip else c for c, flip in zip(unit, flips, strict=True))


@given(any_casing(units))
def test_known_units_scale_in_any_case(unit_and_casing):
    unit, cased = unit_and_casing

    assert unit_scale(cased) == SCALES[unit]


@given(st.text(max_size=6).filter(lambda text: text.lower() not in {u.lower() for u in SCALES}))
def test_anything_else_is_not_a_unit(text):
    with pytest.raises(ValueError):
        unit_scale(text)


@given(units, st.integers(max_value=-1))
def test_negative_sizes_are_rejected(unit, value):
    with pytest.raises(ValueError):
        to_bytes(value, unit)


@given(units, st.integers(min_value=0, max_value=2**80))
def test_sizes_convert_exactly_up_to_64_bits(unit, value):
    if value * SCALES[unit] > MAX_BYTES:
        with pytest.raises(ValueError):
            to_bytes(value, unit)
    else:
        assert to_bytes(value, unit) == value * SCALES[unit]


def volume_with_capacity(capacity: etree._Element) -> str:
    volume = etree.Element("volume")
    etree.SubElement(volume, "name").text = "disk.img"
    volume.append(capacity)
    return etree.tostring(volume, encoding="unicode")


@given(units.flatmap(lambda unit: st.tuples(st.just(unit), st.integers(0, MAX_BYTES // SCALES[unit]))))
def test_size_elements_parse_into_bytes(unit_and_value):
    unit, value = unit_and_value
    capacity = etree.Element("capacity", unit=unit)
    capacity.text = str(value)

    parsed = StorageVolume.from_xml(volume_with_capacity(capacity))

    assert parsed.capacity.in_bytes == value * SCALES[unit]
    assert StorageVolume.from_xml(parsed.to_xml_string()) == parsed


def test_missing_unit_means_the_elements_default():
    capacity = etree.Element("capacity")
    capacity.text = "4"
    domain = lab_guest_domain("guest", kernel="/k", initrd="/i", cmdline="")
    domain.memory = MemorySize(value=4)

    assert StorageVolume.from_xml(volume_with_capacity(capacity)).capacity.in_bytes == 4
    assert Domain.from_xml(domain.to_xml_string()).memory.in_bytes == 4 * 1024


@pytest.mark.parametrize(("unit", "text"), [("KiBB", "1"), ("bytes", "-1"), ("bytes", "ten"), ("EiB", str(2**10))])
def test_invalid_size_elements_do_not_parse(unit, text):
    capacity = etree.Element("capacity", unit=unit)
    capacity.text = text

    with pytest.raises(pydantic.ValidationError):
        StorageVolume.from_xml(volume_with_capacity(capacity))
