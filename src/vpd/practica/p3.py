"""Práctica 3: virtual storage (course summary, Práctica 3 cheatsheet): volumes
in the default pool, a partition as an fs pool, NFS pools (CONT_ISOS_COMP,
CONT_VOL_COMP), disks attached to a VM."""
from __future__ import annotations

from .model import Goal, Practica, Step, T

PRACTICA = Practica(
    number=3,
    title=T("Recursos de almacenamiento virtual", "Virtual storage resources"),
    summary=T("Volúmenes en el contenedor por defecto, una partición del anfitrión como contenedor fs, "
              "contenedores NFS (netfs) para ISOs y discos, y discos asociados a una MV.",
              "Volumes in the default pool, a host partition as an fs pool, NFS (netfs) pools for ISOs and "
              "disks, and disks attached to a VM."),
    seed="Course summary, Práctica 3 (cheatsheet)",
    goals=(
        Goal("volumes",
             T("Volúmenes en el contenedor por defecto", "Volumes in the default pool"),
             T("Los volúmenes existen con su formato y tamaño.", "The volumes exist with their format and size."),
             (
                 Step(T("Crear y listar volúmenes", "Create and list volumes"),
                      ("virsh vol-create-as [pool_name] [vol_name] [size]G --format [raw|qcow2]",
                       "virsh vol-list [pool_name]", "virsh vol-info [vol_name] --pool [pool_name]"),
                      ("vpd vol create default Vol1_p3.img --size 1G --format raw --host HOST",
                       "vpd vol list default", "vpd vol info default Vol1_p3.img --host HOST")),
             )),
        Goal("attach",
             T("Discos asociados a la MV, con sistema de ficheros montado de forma persistente",
               "Disks attached to the VM, with a filesystem mounted persistently"),
             T("La MV tiene los discos (domblklist) y persisten tras reiniciar.",
               "The VM has the disks (domblklist) and they persist across a reboot."),
             (
                 Step(T("Asociar y desasociar", "Attach and detach"),
                      ("virsh attach-disk [vm_name] [source_path] [target_device] --config [--driver qemu "
                       "--subdriver raw|qcow2] [--targetbus virtio]",
                       "virsh detach-disk [vm_name] [target_device] --config",
                       "virsh domblklist [vm_name] --details"),
                      ("vpd vm disk attach mvp3 --vol default/Vol1_p3.img --target vdb --config",
                       "vpd vm disk detach mvp3 --target vdb", "vpd vm disk list mvp3")),
                 Step(T("Dentro de la MV: sistema de ficheros y /etc/fstab", "In the VM: filesystem and /etc/fstab"),
                      ("mkfs.xfs /dev/vdb", "nano /etc/fstab", "mount -a")),
             )),
        Goal("fs-pool",
             T("Una partición del anfitrión como contenedor (fs)", "A host partition as a pool (fs)"),
             T("El contenedor fs está activo y con autoinicio.", "The fs pool is active and autostarts."),
             (
                 Step(T("Definir, construir, iniciar", "Define, build, start"),
                      ("virsh pool-define-as [pool_name] fs --source-dev [device] --target [local_path]",
                       "virsh pool-build [pool_name]", "virsh pool-start [pool_name]",
                       "virsh pool-autostart [pool_name]"),
                      ("vpd pool create Contenedor_Particion --host HOST --type fs --source-dev /dev/sdb1 "
                       "--path /var/lib/libvirt/Pool_Particion --build --autostart",)),
             )),
        Goal("nfs-pools",
             T("Contenedores NFS para ISOs y para discos (CONT_ISOS_COMP, CONT_VOL_COMP)",
               "NFS pools for ISOs and for disks (CONT_ISOS_COMP, CONT_VOL_COMP)"),
             T("Ambos contenedores netfs activos; CONT_VOL_COMP se usará en la Práctica 4.",
               "Both netfs pools active; CONT_VOL_COMP is used in Práctica 4."),
             (
                 Step(T("Definir los contenedores NFS", "Define the NFS pools"),
                      ("virsh pool-define-as [pool_name] [type] --source-host [host] --source-path [path] "
                       "--target [local_path]",
                       "virsh pool-start [pool_name]", "virsh pool-list --all --details",
                       "virsh pool-dumpxml [pool_name]"),
                      ("vpd pool create CONT_VOL_COMP --host HOST --type netfs --source-host NFS_SERVER "
                       "--source-path /export/vol --path /var/lib/libvirt/images/COMPARTIDO",
                       "vpd pool list")),
             )),
    ),
)
