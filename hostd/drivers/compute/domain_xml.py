"""Libvirt domain XML for an instance spec."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from hostd.drivers.compute.port import InstanceSpec

_NAMESPACE = uuid.UUID("5c1a0d5e-7b1e-4f3a-9a57-2f7d6c1b9e01")
MEMORY_SLOTS = 16
"""DIMM slots of a guest with room to grow: how many memory hot-adds it can take."""


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _pci(address: str) -> dict[str, str]:
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")
    return {
        "domain": f"0x{domain}",
        "bus": f"0x{bus}",
        "slot": f"0x{slot}",
        "function": f"0x{function}",
    }


def domain_xml(spec: InstanceSpec, *, domain_type: str = "qemu", arch: str = "x86_64") -> str:
    """``domain_type`` is ``qemu`` (TCG), ``kvm``, or ``test`` for libvirt's test driver."""
    domain = ET.Element("domain", type=domain_type)
    _sub(domain, "name", spec.instance_id)
    # A stable uuid makes defining the same instance twice an update, not a clash.
    _sub(domain, "uuid", str(uuid.uuid5(_NAMESPACE, spec.instance_id)))
    _sub(domain, "memory", str(spec.memory_mb), unit="MiB")
    max_vcpus = max(spec.vcpus, spec.max_vcpus or 0)
    max_memory = max(spec.memory_mb, spec.max_memory_mb or 0)
    if max_memory > spec.memory_mb:
        # Hot-added memory comes as DIMMs, which need a maximum, slots and a NUMA cell.
        _sub(domain, "maxMemory", str(max_memory), slots=str(MEMORY_SLOTS), unit="MiB")
    if max_vcpus > spec.vcpus:
        _sub(domain, "vcpu", str(max_vcpus), current=str(spec.vcpus))
    else:
        _sub(domain, "vcpu", str(spec.vcpus))
    if max_memory > spec.memory_mb:
        numa = _sub(_sub(domain, "cpu"), "numa")
        cpus = f"0-{max_vcpus - 1}" if max_vcpus > 1 else "0"
        _sub(numa, "cell", id="0", cpus=cpus, memory=str(spec.memory_mb), unit="MiB")
    # The guest reads its instance id as the SMBIOS serial number (dmidecode, cloud-init).
    system = _sub(_sub(domain, "sysinfo", type="smbios"), "system")
    _sub(system, "entry", "SCloudStack", name="manufacturer")
    _sub(system, "entry", "SCloudStack Compute", name="product")
    _sub(system, "entry", spec.instance_id, name="serial")
    os_element = _sub(domain, "os")
    _sub(os_element, "type", "hvm", arch=arch)
    _sub(os_element, "smbios", mode="sysinfo")
    if spec.kernel:
        _sub(os_element, "kernel", spec.kernel)
        if spec.initrd:
            _sub(os_element, "initrd", spec.initrd)
        if spec.cmdline:
            _sub(os_element, "cmdline", spec.cmdline)
    else:
        _sub(os_element, "boot", dev="hd")
    # Without ACPI a guest's poweroff never ends the domain.
    _sub(_sub(domain, "features"), "acpi")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_crash", "destroy")
    devices = _sub(domain, "devices")
    disk = _sub(devices, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type=spec.disk_format)
    _sub(disk, "source", file=spec.disk_path)
    _sub(disk, "target", dev="vda", bus="virtio")
    for nic in spec.nics:
        interface = _sub(devices, "interface", type="ethernet")
        _sub(interface, "mac", address=nic.mac)
        _sub(interface, "target", dev=nic.tap, managed="no")
        _sub(interface, "model", type="virtio")
    for address in spec.gpus:
        hostdev = _sub(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
        _sub(_sub(hostdev, "source"), "address", **_pci(address))
    if spec.serial_log:
        serial = _sub(devices, "serial", type="file")
        _sub(serial, "source", path=spec.serial_log)
        _sub(serial, "target", port="0")
    # The guest agent's channel: where an image runs qemu-guest-agent, libvirt sets passwords
    # (setUserPassword) through it; without an agent the call fails with its cause.
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    if spec.vnc:
        _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1")
    return ET.tostring(domain, encoding="unicode")
