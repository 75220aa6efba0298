"""Práctica 6: distributed storage over iSCSI (course summary, Práctica 6): a
target VM exporting block devices, two initiators, filesystems and LVM."""
from __future__ import annotations

from .model import Goal, Practica, Step, T

PRACTICA = Practica(
    number=6,
    title=T("Almacenamiento distribuido (iSCSI)", "Distributed storage (iSCSI)"),
    summary=T("Un nodo exportador (target) y dos importadores (initiators) en dos redes virtuales; LUNs con ACL, "
              "sistemas de ficheros y un volumen lógico sobre iSCSI.",
              "One exporting node (target) and two importing ones (initiators) on two virtual networks; LUNs "
              "with ACLs, filesystems and a logical volume over iSCSI."),
    seed="Course summary, Práctica 6",
    goals=(
        Goal("target",
             T("Target iSCSI con LUN, portal y ACL", "iSCSI target with LUN, portal and ACL"),
             T("El target exporta el LUN solo a los initiators de la ACL; 3260/tcp abierto a ellos.",
               "The target exports the LUN to the ACL's initiators only; 3260/tcp open to them."),
             (
                 Step(T("Configurar el target", "Set up the target"),
                      ("targetcli", "systemctl start/enable target", "firewall-cmd --add-port=3260/tcp",
                       "backstores/block> create name=X dev=/dev/sdX",
                       "/iscsi> create wwn=iqn.YYYY-MM.domain:name", "../portals> create IP_ADDRESS",
                       "../luns> create /backstores/block/X", "../acls> create wwn=iqn.YYYY-MM.domain:initX"),
                      ("vpd iscsi target create --host TARGET --iqn iqn.YYYY-MM.domain:name --vol POOL/VOL "
                       "--allow INITIATOR1 --allow INITIATOR2", "vpd iscsi target list")),
             )),
        Goal("initiators",
             T("Los initiators descubren el target e inician sesión", "The initiators discover the target and "
               "log in"),
             T("Cada initiator tiene una sesión y ve el dispositivo.",
               "Each initiator has a session and sees the device."),
             (
                 Step(T("Descubrir e iniciar sesión", "Discover and log in"),
                      ("iscsiadm --mode discovery --type sendtargets --portal TARGET_IP --discover",
                       "iscsiadm --mode node --targetname IQN --portal TARGET_IP --login",
                       "lsblk -o NAME,TRAN,SIZE,TYPE,MOUNTPOINT"),
                      ("vpd pool create iscsi1 --host INITIATOR1 --type iscsi --portal TARGET_IP "
                       "--target IQN --path /dev/disk/by-path",)),
             )),
        Goal("filesystems-lvm",
             T("Sistemas de ficheros y LVM sobre iSCSI", "Filesystems and LVM over iSCSI"),
             T("ext4/XFS montados; el VG ApacheVG sin autoactivación visible desde ambos initiators.",
               "ext4/XFS mounted; the VG ApacheVG without autoactivation seen from both initiators."),
             (
                 Step(T("Formatear y montar", "Format and mount"),
                      ("mkfs.ext4 /dev/sdX", "mount /dev/sdX /mnt")),
                 Step(T("LVM", "LVM"),
                      ("pvcreate /dev/sdX", "vgcreate --setautoactivation n ApacheVG /dev/sdX",
                       "lvcreate -n ApacheLV -L SIZE ApacheVG", "mkfs.xfs /dev/ApacheVG/ApacheLV"),
                      ("vpd pool create ApacheVG --host INITIATOR1 --type logical --source-dev /dev/sdX --build",
                       "vpd vol create ApacheVG ApacheLV --size SIZE --format raw --host INITIATOR1")),
             )),
    ),
)
