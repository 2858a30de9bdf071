"""Getting models onto devices: ``flash`` over SSH to Linux boards, and emulation of boards with QEMU.

Flash: ``ssh`` (targets, remote commands, copies), ``wheelhouse`` (offline wheels for a device platform),
``device`` (what a device is, and whether it can take a flash), ``flash`` (the plan and its execution).
"""
