"""Getting models onto devices: ``flash`` over SSH to Linux boards (wheelhouse, device checks, atomic releases).

Modules: ``ssh`` (targets, remote commands, copies), ``wheelhouse`` (offline wheels for a device platform),
``device`` (what a device is, and whether it can take a flash), ``flash`` (the plan and its execution).
"""
