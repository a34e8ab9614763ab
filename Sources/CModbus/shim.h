// libmodbus, as the ModbusTransport target sees it. Only Sources/ModbusTransport/LibModbus.swift imports this.
#ifndef ACCEPTANCE_CMODBUS_SHIM_H
#define ACCEPTANCE_CMODBUS_SHIM_H

#include <modbus.h>
#include <errno.h>
#include <sys/select.h>

// libmodbus reports Modbus exceptions and protocol faults as errno values above this base; its own macros for them
// are expressions Swift cannot import, so the base is re-exported as a plain constant.
static const int acceptance_modbus_errno_base = MODBUS_ENOBASE;

// FD_SET and friends are macros; these wrappers let Swift build select() sets.
static inline void acceptance_fd_zero(fd_set *set) { FD_ZERO(set); }
static inline void acceptance_fd_set(int fd, fd_set *set) { FD_SET(fd, set); }
static inline int acceptance_fd_isset(int fd, fd_set *set) { return FD_ISSET(fd, set); }

#endif
