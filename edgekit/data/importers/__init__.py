"""Dataset importers: each turns a copy of public or user files into an edgekit Dataset."""
