"""Práctica 1: virtualisation on Linux (seed: "Practica 1: Virtualización en Linux"):
VMs from a raw image, qcow2 overlays, virsh and XML, LXD containers, X forwarding."""
from __future__ import annotations

from .model import Goal, Practica, Step, T

PRACTICA = Practica(
    number=1,
    title=T("Virtualización en Linux", "Virtualisation on Linux"),
    summary=T("Crear MVs KVM desde una imagen raw y con imágenes qcow2 que comparten una base, gestionarlas "
              "con virsh y su XML, y contenedores LXD.",
              "Create KVM VMs from a raw image and with qcow2 images sharing one base, manage them with virsh "
              "and their XML, and LXD containers."),
    seed="Practica 1, §1-§4",
    goals=(
        Goal("raw-vms",
             T("Dos MVs que arrancan desde la imagen raw y se ven por la red",
               "Two VMs booting from the raw image that reach each other"),
             T("Ambas MVs en ejecución; ping entre ellas.", "Both VMs running; ping between them."),
             (
                 Step(T("Preparar la imagen", "Prepare the image"),
                      ("cd /mnt/tmp", "mkdir lab1", "cd lab1", "cp /lab/cdps/p1/cdps-vm-base-p1.img.bz2 .",
                       "bunzip2 cdps-vm-base-p1.img.bz2")),
                 Step(T("Crear la MV importando el disco (virt-manager, cuarta opción)",
                        "Create the VM importing the disk (virt-manager, fourth option)"),
                      ("HOME=/mnt/tmp sudo virt-manager", "ssh cdps@dirección_ip_máquina_virtual"),
                      ("vpd vm create vm1 --import cdps-vm-base-p1.img --start", "vpd vm iface list vm1")),
                 Step(T("Una segunda MV igual; ¿hay ping entre las dos?",
                        "A second VM alike; do the two ping each other?"),
                      ("sudo halt -p",), ("vpd vm clone vm1 vm2", "vpd vm start vm2")),
             )),
        Goal("qcow2-overlays",
             T("MVs sobre imágenes qcow2 que comparten una base", "VMs on qcow2 images sharing one base"),
             T("Cada disco qcow2 tiene cdps-vm-base-p1.qcow2 como imagen base.",
               "Each qcow2 disk has cdps-vm-base-p1.qcow2 as its backing image."),
             (
                 Step(T("Convertir la imagen raw a qcow2", "Convert the raw image to qcow2"),
                      ("qemu-img convert -O qcow2 cdps-vm-base-p1.img cdps-vm-base-p1.qcow2",),
                      ("vpd vol upload default cdps-vm-base-p1.qcow2 cdps-vm-base-p1.img --host HOST",)),
                 Step(T("Una imagen derivada por MV", "One derived image per VM"),
                      ("qemu-img create -f qcow2 -b cdps-vm-base-p1.qcow2 cdps-vm1.qcow2",
                       "qemu-img info --backing-chain <fichero.qcow2>"),
                      ("vpd vol create default cdps-vm1.qcow2 --backing cdps-vm-base-p1.qcow2 --host HOST",
                       "vpd vol info default cdps-vm1.qcow2 --host HOST")),
             )),
        Goal("virsh-xml",
             T("Una MV creada con virsh desde su XML", "A VM created with virsh from its XML"),
             T("La MV definida desde el XML editado arranca.", "The VM defined from the edited XML starts."),
             (
                 Step(T("Extraer, editar y crear desde el XML", "Dump, edit and create from the XML"),
                      ("sudo virsh list", "sudo virsh dumpxml <id_maquinavirtual> > nombre_fichero.xml",
                       "sudo virsh create nombre_fichero.xml", "sudo virsh start <nombreVM>"),
                      ("vpd vm dumpxml vm1 > vm3.xml", "vpd vm define vm3.xml --host HOST", "vpd vm start vm3"),
                      T("vpd comprueba nombre, UUID, MACs y discos del XML contra todo el inventario antes de "
                        "definirlo.",
                        "vpd checks the XML's name, UUID, MACs and disks against the whole inventory before "
                        "defining it.")),
             )),
        Goal("containers",
             T("Contenedores LXD: imagen, ciclo de vida, órdenes y ficheros",
               "LXD containers: image, life cycle, commands and files"),
             T("El contenedor existe, arranca, ejecuta órdenes y tiene sus límites.",
               "The container exists, starts, runs commands and has its limits."),
             (
                 Step(T("Iniciar LXD e importar la imagen", "Initialise LXD and import the image"),
                      ("sudo usermod -a -G lxd $USER", "lxd init --auto",
                       "lxc image import /lab/cdps/p1/ubuntu2004 /lab/cdps/p1/ubuntu2004.root --alias ubuntu2004",
                       "lxc image list"),
                      ("vpd ct init --host HOST", "vpd ct image import METADATA ROOTFS --alias ubuntu2004",
                       "vpd ct image list")),
                 Step(T("Crear y gestionar el contenedor", "Create and manage the container"),
                      ("lxc launch ubuntu2004 cdps-vm1-lxd", "lxc console cdps-vm1-lxd", "lxc start cdps-vm-lxd",
                       "lxc stop cdps-vm-lxd –-force", "lxc pause cdps-vm-lxd", "lxc delete cdps-vm-lxd"),
                      ("vpd ct launch ubuntu2004 cdps-vm1-lxd", "vpd ct start cdps-vm-lxd",
                       "vpd ct stop cdps-vm-lxd --force", "vpd ct pause cdps-vm-lxd", "vpd ct delete cdps-vm-lxd"),
                      T("El guion escribe `–-force` con un guion largo (–): lxc lo rechaza; es `--force`.",
                        "The seed writes `–-force` with an en dash (–): lxc refuses it; it is `--force`.")),
                 Step(T("Órdenes, ficheros y límites", "Commands, files and limits"),
                      ("lxc exec cdps-vm-lxd -- ls -la", "lxc file pull cdps-vm-lxd/root/.bashrc datos",
                       "lxc file push datos cdps-vm-lxd/root/datos", "lxc info cdps-vm-lxd",
                       "lxc config set cdps-vm-lxd <haardware> <num de recursos>"),
                      ("vpd ct exec cdps-vm-lxd -- ls -la", "vpd ct file pull cdps-vm-lxd/root/.bashrc datos",
                       "vpd ct file push datos cdps-vm-lxd/root/datos", "vpd ct info cdps-vm-lxd",
                       "vpd ct config set cdps-vm-lxd limits.cpu 1")),
             )),
        Goal("x11",
             T("Una aplicación X de la MV en la pantalla del anfitrión", "An X application of the VM on the host's "
               "display"),
             T("xterm se abre por ssh -X.", "xterm opens over ssh -X."),
             (
                 Step(T("Instalar xterm y abrirlo por ssh -X", "Install xterm and open it over ssh -X"),
                      ("sudo apt-get update", "sudo apt-get install xterm xauth x11-apps",
                       "slogin -X <nombre_usuario>@<dirección_ip_máquina_virtual>", "xterm")),
             )),
    ),
)
