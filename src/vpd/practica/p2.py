"""Práctica 2: operations on VMs (seed: "Operaciones con MVs" and the course
summary): backups by hand, clones, virt-install, templates, snapshots, OVF."""
from __future__ import annotations

from .model import Goal, Practica, Step, T

PRACTICA = Practica(
    number=2,
    title=T("Operaciones con máquinas virtuales", "Operations on virtual machines"),
    summary=T("Copias de seguridad de una MV (XML y discos), restauración como MV nueva, clonación con "
              "virt-manager y virt-clone, creación con virt-install, plantillas, instantáneas y OVF.",
              "Back up a VM (XML and disks), restore it as a new VM, clone with virt-manager and virt-clone, "
              "create with virt-install, templates, snapshots and OVF."),
    seed="Operaciones con MVs; course summary, Práctica 2",
    goals=(
        Goal("backup",
             T("Copia de seguridad de una MV y restauración como MV nueva",
               "A VM backed up and restored as a new VM"),
             T("La copia tiene el XML y los discos; la MV restaurada tiene nombre, UUID, MACs y rutas nuevos y "
               "arranca.",
               "The backup holds the XML and the disks; the restored VM has a new name, UUID, MACs and paths "
               "and starts."),
             (
                 Step(T("Localizar y copiar el XML y los discos", "Find and copy the XML and the disks"),
                      ("sudo virsh dumpxml mvp1 > mvp1.xml", "sudo virsh domblklist mvp1",
                       "sudo cp /var/lib/libvirt/images/mvp1.qcow2 /backup/"),
                      ("vpd backup create mvp1 --to /backup", "vpd backup list /backup --host HOST",
                       "vpd backup verify /backup/mvp1-... --host HOST")),
                 Step(T("Restaurar como MV nueva (uuidgen, MAC nueva, ruta nueva, etiquetas SELinux)",
                        "Restore as a new VM (uuidgen, new MAC, new path, SELinux labels)"),
                      ("uuidgen", "nano mvp1-copia.xml", "sudo virsh define mvp1-copia.xml",
                       "sudo restorecon -v /var/lib/libvirt/images/mvp1-copia.qcow2"),
                      ("vpd restore /backup/mvp1-... --as mvp1-copia",)),
             )),
        Goal("clone",
             T("Clones con virt-manager y virt-clone", "Clones with virt-manager and virt-clone"),
             T("Los clones tienen nombre, UUID, MAC y discos propios y arrancan.",
               "The clones have their own name, UUID, MAC and disks and start."),
             (
                 Step(T("Clonar", "Clone"),
                      ("virt-clone --original mvp1 --name clon_virt_clone --auto-clone",),
                      ("vpd vm clone mvp1 clon_virt_clone", "vpd vm clone mvp1 web --count 3")),
             )),
        Goal("virt-install",
             T("Una MV creada desde cero con virt-install", "A VM created from scratch with virt-install"),
             T("La MV existe con la CPU, memoria, disco y red pedidos.",
               "The VM exists with the CPU, memory, disk and network asked for."),
             (
                 Step(T("virt-install", "virt-install"),
                      ("virt-install --name=WINDOWSXP-MV1 --os-type=windows --network network=default "
                       "--disk path=/var/lib/libvirt/images/WINDOWSXP-MV1.img,size=12 --cdrom=/ --graphics spice "
                       "--ram=1024 --vcpus=1",),
                      ("vpd vm create Creacion_virt_install --memory 1024 --vcpus 1 --disk size=12G "
                       "--network network=default --os-variant win11",)),
             )),
        Goal("templates-snapshots",
             T("Plantillas e instantáneas", "Templates and snapshots"),
             T("La plantilla no arranca y da clones; la instantánea devuelve el estado.",
               "The template does not start and yields clones; the snapshot brings the state back."),
             (
                 Step(T("Plantilla", "Template"), ("virt-sysprep -d mvp1",),
                      ("vpd template create mvp1", "vpd vm create web1 --template mvp1 --linked")),
                 Step(T("Instantáneas", "Snapshots"),
                      ("virsh snapshot-create-as mvp1 t0", "virsh snapshot-list mvp1",
                       "virsh snapshot-revert mvp1 t0"),
                      ("vpd snapshot create mvp1 t0", "vpd snapshot list mvp1", "vpd snapshot revert mvp1 t0")),
                 Step(T("OVF/OVA", "OVF/OVA"), ("virt-v2v -i ova mvp1.ova -o libvirt",),
                      ("vpd export mvp1 --ova mvp1.ova", "vpd import mvp1.ova --host HOST")),
             )),
    ),
)
