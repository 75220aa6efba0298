"""Storage on the inventory's hosts (Práctica 3 and 6): pools, volumes, disks on VMs, iSCSI.

pools.py and volumes.py drive libvirt's storage API; support.py finds, before anything is
changed, which pool types a host can really run (libvirt's backend AND the kernel under it);
disks.py attaches volumes, devices and LUNs to guests; iscsi_target.py exports a volume as an
iSCSI LUN (LIO via targetcli, or the userspace tgt where the kernel has no LIO); secrets.py keeps
CHAP passwords in libvirt secrets.
"""
