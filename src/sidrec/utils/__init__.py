"""Small shared helpers: atomic I/O, run folders, seeding, devices, progress bars."""
