"""Práctica 4: live migration between two hosts (seed: "Práctica 4: Migración de
máquinas virtuales"). Every goal here is graded by `vpd practica check 4`."""
from __future__ import annotations

from .model import Goal, Practica, Step, T

PRACTICA = Practica(
    number=4,
    title=T("Migración de máquinas virtuales", "Migrating virtual machines"),
    summary=T("Migrar en vivo la MV mvp4_<etiqueta> de un anfitrión a otro: nombres FQDN, cortafuegos, "
              "almacenamiento compartido (CONT_VOL_COMP), claves SSH temporales, virsh migrate y revocación.",
              "Live-migrate the VM mvp4_<tag> from one host to another: FQDNs, firewall, shared storage "
              "(CONT_VOL_COMP), temporary SSH keys, virsh migrate and revocation."),
    seed="Práctica 4, §3.1-3.3.4 and §4",
    goals=(
        Goal(
            "fqdn",
            T("Cada anfitrión tiene un FQDN único que el otro resuelve",
              "Each host has a unique FQDN the other resolves"),
            T("`hostname` es un FQDN en ambos; cada uno resuelve el nombre del otro (getent ahosts) a su "
              "dirección, no a loopback.",
              "`hostname` is an FQDN on both; each resolves the other's name (getent ahosts) to its address, "
              "not to loopback."),
            (
                Step(T("Ver el nombre actual", "See the current name"), ("hostname", "hostname -f"),
                     ("vpd host list",)),
                Step(T("Fijar el nombre y añadir la línea de /etc/hosts en ambos anfitriones",
                       "Set the name and add the /etc/hosts line on both hosts"),
                     ("sudo nano /etc/hostname", "sudo nano /etc/hosts",
                      "127.0.1.1   anfitrion1.vpd.local   anfitrion1",
                      "sudo systemctl restart systemd-hostnamed"),
                     ("vpd host prepare HOST1 --set-fqdn anfitrion1.vpd.local",),
                     T("La línea 127.0.1.1 del guion resuelve el propio nombre a loopback; el otro anfitrión "
                       "necesita una línea con la dirección real (vpd la añade en ambos).",
                       "The seed's 127.0.1.1 line resolves the host's own name to loopback; the other host "
                       "needs a line with the real address (vpd adds it on both).")),
            ),
            checked=True),
        Goal(
            "firewall",
            T("Puertos de migración, libvirt y SSH abiertos al otro anfitrión (y no a todo el mundo)",
              "Migration ports, libvirt and SSH open to the peer (and not to the whole world)"),
            T("En la zona de firewalld activa en la interfaz que llega al otro anfitrión (o en las cadenas "
              "de nftables): 49152-49216/tcp, 16509/tcp y 22/tcp admitidos desde el otro anfitrión, en "
              "ejecución y en la configuración permanente; una conexión TCP real lo confirma; migración y "
              "libvirt no quedan abiertos a cualquier origen.",
              "In the firewalld zone active on the interface that reaches the peer (or in the nftables "
              "chains): 49152-49216/tcp, 16509/tcp and 22/tcp admitted from the peer, at runtime and in the "
              "permanent configuration; a real TCP connection confirms it; migration and libvirt are not "
              "open to any source."),
            (
                Step(T("Ver el cortafuegos y la zona activa", "See the firewall and the active zone"),
                     ("sudo systemctl status firewalld", "sudo firewall-cmd --get-active-zones")),
                Step(T("Abrir libvirt, el rango de migración y SSH, en ambos anfitriones",
                       "Open libvirt, the migration range and SSH, on both hosts"),
                     ("sudo firewall-cmd --add-service=libvirt --permanent",
                      "sudo firewall-cmd --add-port=49152-49216/tcp --permanent",
                      "sudo firewall-cmd --add-service=ssh --permanent",
                      "sudo firewall-cmd --reload",
                      "sudo firewall-cmd --list-all"),
                     ("vpd host prepare HOST1 HOST2 --dry-run", "vpd host prepare HOST1 HOST2"),
                     T("Sin --zone= las reglas van a la zona por defecto, no necesariamente a la de la interfaz "
                       "(la trampa de la zona: 'No route to host'); y --add-port abre el puerto a todo el mundo. "
                       "vpd añade reglas ricas solo para la dirección del otro anfitrión en la zona de la "
                       "interfaz que llega a él.",
                       "Without --zone= the rules go to the default zone, not necessarily the interface's (the "
                       "zone trap: 'No route to host'); and --add-port opens the port to the whole world. vpd "
                       "adds rich rules for the peer's address only, in the zone of the interface that reaches "
                       "it.")),
            ),
            checked=True),
        Goal(
            "shared-storage",
            T("El disco de la MV está en almacenamiento que ven ambos anfitriones (CONT_VOL_COMP)",
              "The VM's disk is on storage both hosts see (CONT_VOL_COMP)"),
            T("Un fichero testigo escrito junto al disco en el origen se lee en el destino (y se borra).",
              "A token file written next to the disk on the source is read on the destination (and removed)."),
            (
                Step(T("Comprobar el contenedor compartido", "Check the shared pool"),
                     ("sudo podman ps", "virsh pool-info CONT_VOL_COMP", "virsh pool-list --all",
                      "virsh vol-list CONT_VOL_COMP"),
                     ("vpd pool info CONT_VOL_COMP --host HOST1", "vpd vol list CONT_VOL_COMP")),
                Step(T("Clonar mvp1 como mvp4_<etiqueta> con el disco en CONT_VOL_COMP y arrancarla",
                       "Clone mvp1 as mvp4_<tag> with its disk in CONT_VOL_COMP and start it"),
                     ("virt-clone --original mvp1 --name mvp4_lqd25 --file "
                      "/var/lib/libvirt/images/COMPARTIDO/pc25_LQD_ANFITRION1_p4.qcow2 --mac=00:16:3e:31:13:b3",
                      "virsh start mvp4_lqd25", "virsh domifaddr mvp4_lqd25"),
                     ("vpd vm clone mvp1 mvp4_lqd25 --pool CONT_VOL_COMP --mac 00:16:3e:31:13:b3",
                      "vpd vm start mvp4_lqd25", "vpd vm iface list mvp4_lqd25")),
            ),
            checked=True),
        Goal(
            "migrated",
            T("La MV corre en el destino, persistente, y el origen ya no la define",
              "The VM runs on the destination, persistent, and the source no longer defines it"),
            T("En el destino: definida, persistente y en ejecución; en el origen: no definida "
              "(--persistent --undefinesource).",
              "On the destination: defined, persistent and running; on the source: not defined "
              "(--persistent --undefinesource)."),
            (
                Step(T("Generar un par de claves y copiarlo al destino", "Make a key pair and copy it to the "
                       "destination"),
                     ("sudo ssh-keygen -t rsa -b 4096", "sudo ssh-copy-id root@destino.vpd.local",
                      "sudo ssh root@destino.vpd.local"),
                     ("vpd access grant HOST1 HOST2 --ttl 15m",),
                     T("vpd crea una clave propia para la migración, limitada a la dirección del origen y "
                       "que caduca sola; `vpd migrate` la concede y la revoca por sí mismo.",
                       "vpd makes a key of its own for the migration, limited to the source's address and "
                       "expiring by itself; `vpd migrate` grants and revokes it on its own.")),
                Step(T("Migrar en vivo", "Migrate live"),
                     ("sudo virsh list --all",
                      "sudo virsh migrate --live mvp4_etiqueta_de_equipo qemu+ssh://destino.vpd.local/system "
                      "--verbose",
                      "sudo virsh migrate --live --persistent --undefinesource mvp4_etiqueta_de_equipo "
                      "qemu+ssh://destino.vpd.local/system"),
                     ("vpd migrate mvp4_etiqueta_de_equipo --to HOST2 --dry-run",
                      "vpd migrate mvp4_etiqueta_de_equipo --to HOST2 --persistent --undefinesource")),
                Step(T("Validar en el destino", "Validate on the destination"),
                     ("sudo virsh list --all", "sudo virsh dominfo mvp4_etiqueta_de_equipo",
                      "sudo virsh console mvp4_etiqueta_de_equipo"),
                     ("vpd vm info mvp4_etiqueta_de_equipo", "vpd vm console mvp4_etiqueta_de_equipo")),
            ),
            checked=True),
        Goal(
            "key-revoked",
            T("No queda la clave temporal del origen en authorized_keys del destino",
              "No temporary key of the source is left in the destination's authorized_keys"),
            T("Ninguna línea de /root/.ssh/authorized_keys del destino tiene (por el blob de la clave, como "
              "la lee sshd) una clave pública de /root/.ssh/*.pub del origen, una clave con el comentario "
              "root@<origen> ni una concesión de vpd ya vencida.",
              "No line of the destination's /root/.ssh/authorized_keys holds (by key blob, as sshd reads it) a "
              "public key of the source's /root/.ssh/*.pub, a key commented root@<source>, or a vpd grant "
              "that is over."),
            (
                Step(T("Revocar el acceso temporal", "Revoke the temporary access"),
                     ("sudo ssh root@destino.vpd.local \"sed -i '/$(cat ~/.ssh/id_rsa.pub | cut -d' ' -f2)/d' "
                      "~/.ssh/authorized_keys\"",
                      "sudo ssh root@destino.vpd.local", "nano ~/.ssh/authorized_keys"),
                     ("vpd access revoke GRANT_ID", "vpd access list"),
                     T("El sed del guion no funciona con claves RSA: su base64 contiene '/', que cierra la "
                       "dirección de sed antes de tiempo; sed da error o ejecuta el resto como otra orden y a "
                       "menudo termina con 0 dejando la clave. vpd quita la línea comparando el blob de la "
                       "clave, nunca con un patrón.",
                       "The seed's sed does not work with RSA keys: their base64 holds '/', which ends sed's "
                       "address early; sed errors or runs the rest as another command, often exiting 0 with "
                       "the key still there. vpd removes the line by comparing the key blob, never with a "
                       "pattern.")),
            ),
            checked=True),
        Goal(
            "disk-readable",
            T("El disco de la MV se lee en el destino", "The VM's disk reads on the destination"),
            T("En el destino, `qemu-img info -U` entiende cada disco y su primer bloque se lee.",
              "On the destination, `qemu-img info -U` reads each disk's header and its first block reads."),
            (
                Step(T("Comprobar el almacenamiento desde la MV migrada", "Check the storage from the migrated VM"),
                     ("df -h",), ("vpd vm disk list mvp4_etiqueta_de_equipo",)),
            ),
            checked=True),
    ),
)
