"""Práctica 7: a basic cluster (the seed lists it, "Diseño y despliegue de un
clúster básico", its guide is still to come): Pacemaker members, fencing, a
highly available VM on shared storage."""
from __future__ import annotations

from .model import Goal, Practica, Step, T

PRACTICA = Practica(
    number=7,
    title=T("Diseño y despliegue de un clúster básico", "Designing and deploying a basic cluster"),
    summary=T("Un clúster Pacemaker/Corosync de dos o tres anfitriones con cercado (fencing) y una MV de alta "
              "disponibilidad sobre almacenamiento compartido que sobrevive a la caída de su anfitrión.",
              "A Pacemaker/Corosync cluster of two or three hosts with fencing and a highly available VM on "
              "shared storage that survives the loss of its host."),
    seed="Course index, Práctica 7 (guide not yet published)",
    goals=(
        Goal("cluster",
             T("Clúster con quórum y todos los miembros en línea", "A cluster with quorum, every member online"),
             T("pcs status: miembros online, quórum, DC elegido.", "pcs status: members online, quorum, a DC."),
             (
                 Step(T("Autenticar y crear el clúster", "Authenticate and create the cluster"),
                      ("dnf install pcs pacemaker fence-agents-all", "systemctl enable --now pcsd",
                       "passwd hacluster", "firewall-cmd --add-service=high-availability --permanent",
                       "pcs host auth nodo1 nodo2", "pcs cluster setup clustervpd nodo1 nodo2",
                       "pcs cluster start --all", "pcs status"),
                      ("vpd cluster create clustervpd --hosts HOST1,HOST2 --fence fence_ipmilan ...",
                       "vpd cluster status clustervpd"),
                      T("vpd abre los puertos del clúster solo a los miembros y genera una contraseña aleatoria "
                        "para hacluster.",
                        "vpd opens the cluster's ports to the members only and makes a random hacluster "
                        "password.")),
             )),
        Goal("fencing",
             T("Cercado configurado y probado", "Fencing configured and tested"),
             T("Un dispositivo stonith por miembro; stonith-enabled=true.",
               "One stonith device per member; stonith-enabled=true."),
             (
                 Step(T("Dispositivos de cercado", "Fence devices"),
                      ("pcs stonith create fence_nodo1 fence_ipmilan ip=... username=... password=...",
                       "pcs property set stonith-enabled=true", "pcs stonith fence nodo2"),
                      ("vpd cluster create clustervpd --hosts HOST1,HOST2 --fence fence_ipmilan ip=...",)),
             )),
        Goal("ha-vm",
             T("Una MV de alta disponibilidad que cambia de anfitrión", "A highly available VM that moves hosts"),
             T("El recurso VirtualDomain corre; se mueve en vivo y vuelve tras la caída de su anfitrión.",
               "The VirtualDomain resource runs; it moves live and comes back after its host fails."),
             (
                 Step(T("Recurso VirtualDomain", "VirtualDomain resource"),
                      ("pcs resource create mvp7 VirtualDomain config=/shared/mvp7.xml "
                       "migration_transport=ssh meta allow-migrate=true",
                       "pcs resource move mvp7 nodo2", "pcs node standby nodo1"),
                      ("vpd ha enable mvp7 --cluster clustervpd", "vpd ha move mvp7 --to HOST2",
                       "vpd cluster standby HOST1")),
             )),
    ),
)
