"""Domain XML from an instance spec: what libvirt needs to boot it the way we mean."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hostd.drivers.compute.domain_xml import domain_xml
from hostd.drivers.compute.port import InstanceSpec, Nic


def test_direct_kernel_boot_with_serial_log_tap_and_gpu() -> None:
    spec = InstanceSpec(
        instance_id="i-01jd3x0000000000000000000z",
        vcpus=2,
        memory_mb=256,
        disk_path="/d/root.qcow2",
        kernel="/k/vmlinuz",
        initrd="/k/initrd",
        cmdline="console=ttyS0",
        nics=(Nic("52:54:00:00:00:01", "tap0"),),
        gpus=("0000:3b:00.0",),
        serial_log="/var/log/i.log",
    )
    root = ET.fromstring(domain_xml(spec, domain_type="qemu"))
    assert root.get("type") == "qemu"
    assert root.findtext("name") == spec.instance_id
    assert root.findtext("vcpu") == "2"
    assert root.find("memory").get("unit") == "MiB" and root.findtext("memory") == "256"  # type: ignore[union-attr]
    assert root.findtext("os/kernel") == "/k/vmlinuz"
    assert root.findtext("os/cmdline") == "console=ttyS0"
    assert root.find("features/acpi") is not None
    assert root.find("devices/disk/source").get("file") == "/d/root.qcow2"  # type: ignore[union-attr]
    target = root.find("devices/interface[@type='ethernet']/target")
    assert target is not None and target.get("dev") == "tap0" and target.get("managed") == "no"
    address = root.find("devices/hostdev/source/address")
    assert address is not None and address.attrib == {
        "domain": "0x0000",
        "bus": "0x3b",
        "slot": "0x00",
        "function": "0x0",
    }
    assert root.find("devices/serial/source").get("path") == "/var/log/i.log"  # type: ignore[union-attr]
    assert root.find("devices/graphics").get("listen") == "127.0.0.1"  # type: ignore[union-attr]
    agent = root.find("devices/channel[@type='unix']/target")
    assert agent is not None and agent.get("name") == "org.qemu.guest_agent.0"


def test_disk_boot_without_kernel() -> None:
    spec = InstanceSpec(
        instance_id="i-01jd3x0000000000000000001z",
        vcpus=1,
        memory_mb=128,
        disk_path="/d/x.qcow2",
        vnc=False,
    )
    root = ET.fromstring(domain_xml(spec))
    assert root.find("os/kernel") is None
    assert root.find("os/boot").get("dev") == "hd"  # type: ignore[union-attr]
    assert root.find("devices/graphics") is None


def test_a_guest_with_room_to_grow_has_hot_pluggable_vcpus_and_dimm_slots() -> None:
    spec = InstanceSpec(
        instance_id="i-01jd3x0000000000000000000z",
        vcpus=2,
        memory_mb=1024,
        disk_path="/d/root.qcow2",
        max_vcpus=8,
        max_memory_mb=4096,
    )
    root = ET.fromstring(domain_xml(spec, domain_type="qemu"))
    vcpu = root.find("vcpu")
    assert vcpu is not None and (vcpu.text, vcpu.get("current")) == ("8", "2")
    maximum = root.find("maxMemory")
    assert maximum is not None and maximum.text == "4096" and maximum.get("unit") == "MiB"
    assert int(maximum.get("slots", "0")) > 0
    assert root.findtext("memory") == "1024"
    cell = root.find("cpu/numa/cell")
    assert cell is not None and cell.attrib == {
        "id": "0",
        "cpus": "0-7",
        "memory": "1024",
        "unit": "MiB",
    }


def test_a_guest_without_room_has_a_fixed_size() -> None:
    spec = InstanceSpec(instance_id="i-x", vcpus=2, memory_mb=1024, disk_path="/d/r.qcow2")
    root = ET.fromstring(domain_xml(spec, domain_type="qemu"))
    vcpu = root.find("vcpu")
    assert vcpu is not None and vcpu.text == "2" and vcpu.get("current") is None
    assert root.find("maxMemory") is None and root.find("cpu/numa") is None
