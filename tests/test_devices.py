import pytest

from airflow_carbon.core.devices import DeviceRef, parse_visible_devices

pytestmark = pytest.mark.unit


def test_unset_means_every_gpu_and_empty_means_none():
    assert parse_visible_devices(None).all
    assert parse_visible_devices("").refs == ()
    assert parse_visible_devices("  ").refs == ()


def test_indices_uuids_and_mig_forms():
    visible = parse_visible_devices("1, GPU-fa4e0001, MIG-fb000000-0000-4000-8000-000000000001,MIG-GPU-abc/1/0")
    assert visible.refs == (
        DeviceRef(index=1),
        DeviceRef(uuid="GPU-fa4e0001"),
        DeviceRef(uuid="MIG-fb000000-0000-4000-8000-000000000001"),
        DeviceRef(uuid="MIG-GPU-abc/1/0"),
    )
    assert [r.is_mig for r in visible.refs] == [False, False, True, True]


def test_negative_index_hides_the_rest_like_cuda():
    assert parse_visible_devices("0,-1,1").refs == (DeviceRef(index=0),)


@pytest.mark.parametrize("value, bad", [("0,x", "'x'"), ("gpu0", "'gpu0'"), ("0;1", "'0;1'")])
def test_malformed_value_is_named_with_what_is_accepted(value, bad):
    with pytest.raises(ValueError) as err:
        parse_visible_devices(value)
    assert bad in str(err.value) and "GPU-<uuid>" in str(err.value)


def test_duplicate_entry_is_refused():
    with pytest.raises(ValueError, match="twice"):
        parse_visible_devices("0,0")


def test_device_order():
    assert parse_visible_devices("0", "pci_bus_id").order == "PCI_BUS_ID"
    with pytest.raises(ValueError, match=r"CUDA_DEVICE_ORDER='SLOWEST'.*FASTEST_FIRST, PCI_BUS_ID"):
        parse_visible_devices("0", "SLOWEST")
