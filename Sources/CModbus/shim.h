// libmodbus, as the ModbusTransport target sees it. Only Sources/ModbusTransport/LibModbus.swift imports this.
#ifndef ACCEPTANCE_CMODBUS_SHIM_H
#define ACCEPTANCE_CMODBUS_SHIM_H

#include <modbus.h>
#include <errno.h>

// libmodbus reports Modbus exceptions and protocol faults as errno values above this base; its own macros for them
// are expressions Swift cannot import, so the base is re-exported as a plain constant.
static const int acceptance_modbus_errno_base = MODBUS_ENOBASE;

#endif
