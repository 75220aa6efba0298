"""OVF / OVA: moving a VM between hypervisors as a DMTF OVF package.

envelope.py models the descriptor (typed pydantic-xml, OVF 2.x written, 1.x and 2.x read),
package.py reads and writes packages safely (OVA tar members, .mf manifests), images.py moves
disk images (qemu-img, libvirt volume streams), export.py and import_.py are the procedures.
"""
