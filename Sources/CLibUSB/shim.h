// libusb-1.0, as the InstrumentTransport target sees it. Only Sources/InstrumentTransport/LibUSB.swift imports this.
#ifndef ACCEPTANCE_CLIBUSB_SHIM_H
#define ACCEPTANCE_CLIBUSB_SHIM_H

#include <libusb-1.0/libusb.h>

// libusb_set_option is variadic, which Swift cannot call: one shim per option used, each with its one argument.
static inline int acceptance_libusb_set_log_level(libusb_context *context, int level) {
    return libusb_set_option(context, LIBUSB_OPTION_LOG_LEVEL, level);
}

#endif
