"""The driver conformance suite (:mod:`tests.drivers.conformance`) and one module per driver."""
