"""Transport drivers: the driver interface (:mod:`messaging.drivers.base`) and the drivers."""
