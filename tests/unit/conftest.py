"""A test module that needs the OS's D-Bus bindings (dbus-python, gi) is skipped, with the
reason in the summary, on an interpreter that lacks them: the Python 3.8 run of dev/test.sh
has no bindings built for 3.8 (on Venus they come with the OS). Any other import error fails."""
import importlib.util

import pytest

OS_BINDINGS = ("dbus", "gi")


class _NeedsOsBindings(pytest.Module):
    def _getobj(self):
        try:
            return super()._getobj()
        except self.CollectError as error:
            missing = error.__cause__
            if isinstance(missing, ModuleNotFoundError) and (missing.name or "").split(".")[0] in OS_BINDINGS:
                pytest.skip("%s needs %s, which this Python has not (one of the OS's D-Bus bindings)"
                            % (self.path.name, missing.name), allow_module_level=True)
            raise


def pytest_pycollect_makemodule(module_path, parent):
    if module_path.name == "__init__.py" or all(importlib.util.find_spec(name) for name in OS_BINDINGS):
        return None     # pytest's own collector
    return _NeedsOsBindings.from_parent(parent, path=module_path)
