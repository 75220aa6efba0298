"""Virtual networks (libvirt), guest interfaces, and host bridges (Práctica 5)."""
