/* gst-earlyexit: common definitions. */
#include "ee-common.h"

G_DEFINE_QUARK (ee - error - quark, ee_error)
