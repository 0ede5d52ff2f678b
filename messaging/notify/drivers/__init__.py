"""The base class of notification drivers.

The drivers themselves live at oslo.messaging's module paths
(``messaging.notify.messaging``, ``messaging.notify._impl_log``, ``_impl_noop``,
``_impl_routing``, ``_impl_test``), where services' tests patch them, and are
loaded by name from the ``messaging.notify.drivers`` entry points (then from
oslo.messaging's ``oslo.messaging.notify.drivers``, for third-party drivers).
"""
