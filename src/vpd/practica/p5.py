"""Práctica 5: virtual networks (course summary, Práctica 5): a VM reached by
its serial console, a NAT network and an isolated one defined from XML, a host
bridge, and NICs on each."""
from __future__ import annotations

from .model import Goal, Practica, Step, T

PRACTICA = Practica(
    number=5,
    title=T("Infraestructura de red virtual", "Virtual network infrastructure"),
    summary=T("Una MV (mvp5) sin red accesible por consola serie; una red NAT (Cluster) con DHCP y una aislada "
              "(Almacenamiento) sin DHCP; un puente del anfitrión (bridge0) y una interfaz de la MV en cada red.",
              "A VM (mvp5) without a network reached by its serial console; a NAT network (Cluster) with DHCP "
              "and an isolated one (Almacenamiento) without; a host bridge (bridge0) and a NIC of the VM on "
              "each."),
    seed="Course summary, Práctica 5",
    goals=(
        Goal("console",
             T("mvp5 sin interfaz de red, accesible por consola serie", "mvp5 without a NIC, reached on its "
               "serial console"),
             T("mvp5 no tiene NICs y su consola serie responde.", "mvp5 has no NIC and its serial console answers."),
             (
                 Step(T("Clonar y quitar la interfaz", "Clone and remove the NIC"),
                      ("virt-clone --original mvp1 --name mvp5 --file /var/lib/libvirt/images/mvp5.qcow2",
                       "virsh detach-interface mvp5 network --mac [MAC] --config"),
                      ("vpd vm clone mvp1 mvp5", "vpd vm iface detach mvp5 --mac MAC --config")),
                 Step(T("Consola serie (dentro de la MV) y acceso", "Serial console (inside the VM) and access"),
                      ("vi /etc/default/grub", "grub2-editenv - unset kernelopts",
                       "grub2-mkconfig -o /boot/grub2/grub.cfg", "reboot", "virsh console mvp5"),
                      ("vpd vm console mvp5",)),
             )),
        Goal("networks",
             T("Red NAT Cluster con DHCP y red aislada Almacenamiento sin DHCP",
               "NAT network Cluster with DHCP and isolated network Almacenamiento without"),
             T("Ambas redes activas y con autoinicio, con su modo, subred y DHCP.",
               "Both networks active and autostarting, with their mode, subnet and DHCP."),
             (
                 Step(T("Definir, iniciar y autoiniciar", "Define, start and autostart"),
                      ("virsh net-define [network.xml]", "virsh net-start [network_name]",
                       "virsh net-autostart [network_name]", "virsh net-list --all"),
                      ("vpd net create Cluster --host HOST --mode nat --subnet 192.168.140.0/24 "
                       "--dhcp 192.168.140.2-192.168.140.149 --autostart",
                       "vpd net create Almacenamiento --host HOST --mode isolated --subnet 10.22.122.0/24 "
                       "--autostart",
                       "vpd net list")),
             )),
        Goal("nics",
             T("Interfaces de mvp5 en las redes, configuradas con nmcli", "mvp5's NICs on the networks, set up "
               "with nmcli"),
             T("mvp5 tiene una NIC virtio en cada red y en el puente; cada una con su dirección.",
               "mvp5 has a virtio NIC on each network and on the bridge; each with its address."),
             (
                 Step(T("Añadir interfaces", "Attach NICs"),
                      ("virsh attach-interface mvp5 [network|bridge] [source_name] --model virtio --config "
                       "[--mac [MAC]]", "virsh domiflist mvp5"),
                      ("vpd vm iface attach mvp5 --network Cluster", "vpd vm iface attach mvp5 --network "
                       "Almacenamiento", "vpd vm iface list mvp5")),
                 Step(T("Dentro de la MV: direcciones", "Inside the VM: addresses"),
                      ("nmcli connection add type ethernet con-name [ConName] ifname [iface] ipv4.method "
                       "[auto|manual] [ipv4.addresses IP/Mask]", "nmcli connection up [ConName]")),
             )),
        Goal("bridge",
             T("Puente bridge0 del anfitrión con la interfaz física", "Host bridge bridge0 with the physical NIC"),
             T("bridge0 existe con la interfaz física como puerto y la dirección del anfitrión.",
               "bridge0 exists with the physical NIC as its port and the host's address."),
             (
                 Step(T("Crear el puente", "Create the bridge"),
                      ("nmcli con add type bridge con-name bridge0 ifname bridge0",
                       "nmcli con mod [physical_iface] master bridge0",
                       "nmcli con mod bridge0 ipv4.method [auto|manual] [ipv4.addresses IP/Mask] "
                       "[ipv4.gateway GW] [ipv4.dns DNS]",
                       "nmcli con down [physical_iface] && nmcli con up bridge0",
                       "ip addr show [bridge_name]", "ip route"),
                      ("vpd host bridge create bridge0 --iface enp6s0 --host HOST",
                       "vpd vm iface attach mvp5 --bridge bridge0"),
                      T("Si se pierde la conexión a mitad, el anfitrión queda sin red; vpd deshace el cambio solo "
                        "si no se confirma a tiempo.",
                        "Losing the connection half-way leaves the host without a network; vpd undoes the "
                        "change by itself unless it is confirmed in time.")),
             )),
    ),
)
