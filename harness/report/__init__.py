"""What people read: tables, figures and the HTML report.

``ctbench.report`` was a module (now ``ctbench.report.html``): its names still resolve here, with
a DeprecationWarning, for one release."""

from ctbench._moved import moved_names

__getattr__ = moved_names(__name__, "ctbench.report.html")
