"""`magimac.core.units`: one reading of "32GB" (a Mac as Apple sells it: 32 GiB), one way to
print sizes (decimal, as Finder), one headroom rule."""

from __future__ import annotations

import pytest

from magimac.core.errors import MagimacError
from magimac.core.units import GIB, default_gpu_limit, format_bytes, gpu_budget, parse_size


@pytest.mark.parametrize("text", ["32GB", "32 GB", "32G", "32gb", "32GiB", " 32 gib ", "32"])
def test_every_way_of_writing_32gb_is_the_32gb_mac(text):
    assert parse_size(text) == 32 * GIB == 34_359_738_368


def test_other_units():
    assert parse_size("512MB") == parse_size("0.5GB") == 512 * 2**20
    assert parse_size("24GiB") == 24 * GIB and parse_size("1TB") == 2**40 and parse_size("100B") == 100


@pytest.mark.parametrize("text", ["lots", "32 GBs", "-4GB", "0", "GB", ""])
def test_a_size_that_cannot_be_read_is_one_line_naming_it(text):
    with pytest.raises(MagimacError) as e:
        parse_size(text)
    assert repr(text) in str(e.value) and "\n" not in str(e.value)


def test_printed_sizes_are_decimal_and_ram_is_binary():
    assert format_bytes(14_140_000_000) == "14.14 GB"
    assert format_bytes(512_000_000) == "512.0 MB" and format_bytes(3_200) == "3.2 KB" and format_bytes(12) == "12 B"
    assert format_bytes(32 * GIB, binary=True) == "32 GiB" and format_bytes(1.5 * GIB, binary=True) == "1.5 GiB"


def test_the_gpu_may_use_two_thirds_up_to_36gib_then_three_quarters_less_headroom():
    assert default_gpu_limit(32 * GIB) == 32 * GIB * 2 // 3
    assert default_gpu_limit(64 * GIB) == 64 * GIB * 3 // 4
    assert format_bytes(gpu_budget(default_gpu_limit(parse_size("32GB")))) == "20.62 GB"
