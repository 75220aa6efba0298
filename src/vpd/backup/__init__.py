"""Backups of VMs (libvirt's backup API with checkpoints; qemu-img for stopped guests),
their manifests and checks, and restores onto any host."""
