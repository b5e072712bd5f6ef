/* gst-earlyexit: the `earlyexit` GStreamer plugin.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/gst.h>

#include "ee-result.h"
#include "gstaudioexitclassify.h"
#include "gstavcrowdcount.h"
#include "gstearlyexitoverlay.h"
#include "gstearlyexitpublish.h"
#include "gstexitclassify.h"

static gboolean
plugin_init (GstPlugin *plugin)
{
  ee_result_meta_register ();
  return GST_ELEMENT_REGISTER (avcrowdcount, plugin)
         && GST_ELEMENT_REGISTER (earlyexitoverlay, plugin)
         && GST_ELEMENT_REGISTER (exitclassify, plugin)
         && GST_ELEMENT_REGISTER (audioexitclassify, plugin)
         && GST_ELEMENT_REGISTER (earlyexitpublish, plugin);
}

GST_PLUGIN_DEFINE (
    GST_VERSION_MAJOR, GST_VERSION_MINOR, earlyexit,
    "Multi-exit neural networks with per-frame deadlines (anytime prediction)",
    plugin_init, PACKAGE_VERSION, "LGPL", PACKAGE_NAME, PACKAGE_ORIGIN)
