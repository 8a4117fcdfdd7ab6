"""One registry for every kind of component: networks, datasets, loss terms,
learning-rate schedules.

A component registers itself with a decorator in its own file:

    from registry import MODELS

    @MODELS.register('EDSR')
    class EDSR(nn.Module): ...

`--model`, `--data_train/--data_test`, `--loss` and `--decay` accept the
registered names (case-insensitive). The first lookup imports every module of
the component's package (`src/model/`, `src/data/`, `src/loss/`; schedules are
the functions of the one module `src/schedule.py`), so a new file is found
without being listed anywhere, and a helper module that registers nothing is
never mistaken for a component.
"""
import importlib
import pkgutil


class Registry:
    def __init__(self, kind, package):
        self.kind = kind          # 'model', 'dataset', 'loss term': used in messages
        self.package = package    # the package whose modules are scanned
        self._items = {}          # lower-case name -> (name, object)
        self._scanned = False

    def register(self, name):
        """Decorator: register `obj` under `name`."""
        def deco(obj):
            key = name.lower()
            old = self._items.get(key)
            if old is not None and _origin(old[1]) != _origin(obj):
                raise ValueError(f'{self.kind} {name!r} is registered twice: {_origin(old[1])} and {_origin(obj)}')
            self._items[key] = (name, obj)
            return obj
        return deco

    def _scan(self):
        if self._scanned:
            return
        self._scanned = True
        pkg = importlib.import_module(self.package)  # a package, or one module (schedules)
        for info in sorted(pkgutil.iter_modules(getattr(pkg, '__path__', ())), key=lambda m: m.name):
            importlib.import_module(f'{self.package}.{info.name}')

    def names(self):
        self._scan()
        return sorted((n for n, _ in self._items.values()), key=str.lower)

    def canonical(self, name):
        """The registered spelling of `name`, or None."""
        self._scan()
        item = self._items.get(str(name).lower())
        return item[0] if item else None

    def get(self, name):
        self._scan()
        item = self._items.get(str(name).lower())
        if item is None:
            raise KeyError(f"unknown {self.kind} '{name}' (one of: {', '.join(self.names())})")
        return item[1]

    def __contains__(self, name):
        return self.canonical(name) is not None


def _origin(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


MODELS = Registry('model', 'model')
DATASETS = Registry('dataset', 'data')
LOSSES = Registry('loss term', 'loss')
SCHEDULES = Registry('schedule', 'schedule')
