"""The rule files that ship with floatingip, installed as ``floatingip.shipped_rules``.

Rule files are loaded by path, not imported as part of this package; this file only makes the
directory a package so that it installs with floatingip.  Files starting with ``_`` are not rules.
"""
