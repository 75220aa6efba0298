"""The REST API under /api/v1: one router per resource, each calling the operation functions
the CLI calls (vm.operations, migration.operations, ...), never libvirt directly."""
