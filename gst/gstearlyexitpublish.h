/* gst-earlyexit: publishes the earlyexit results passing through as JSON.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef __GST_EARLYEXIT_PUBLISH_H__
#define __GST_EARLYEXIT_PUBLISH_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

typedef enum
{
  GST_EARLYEXIT_PUBLISH_FILE,
  GST_EARLYEXIT_PUBLISH_MQTT,
  GST_EARLYEXIT_PUBLISH_KAFKA,
} GstEarlyExitPublishMethod;

#define GST_TYPE_EARLYEXIT_PUBLISH (gst_earlyexit_publish_get_type ())
G_DECLARE_FINAL_TYPE (GstEarlyExitPublish, gst_earlyexit_publish, GST,
                      EARLYEXIT_PUBLISH, GstBaseTransform);

typedef struct _EePublishMsg EePublishMsg;

struct _GstEarlyExitPublish
{
  GstBaseTransform parent;

  /* properties, protected by the object lock; read once at start() */
  GstEarlyExitPublishMethod method;
  gchar *source;
  gchar *location;
  guint64 max_file_size;
  guint max_files;
  gchar *host;
  gint port;
  gchar *topic;
  gchar *client_id;
  gint qos;
  gchar *tls_ca_file;
  gchar *username;
  gchar *password_file;
  gchar *password_env;
  gchar *brokers;
  guint max_queued;
  guint64 flush_timeout;

  /* fixed from start() to stop(): read by both threads without a lock */
  GstEarlyExitPublishMethod run_method;
  gchar *run_source;
  gchar *run_topic;
  guint run_max_queued;
  gint run_qos;
  /* streaming thread only */
  guint64 seq;

  /* the queue and the counters, protected by `lock`; `cond` is signalled on
   * every change (the EOS drain waits on it) */
  GMutex lock;
  GCond cond;
  GQueue queue;   /* EePublishMsg *, oldest first */
  guint inflight; /* handed to the client library, not yet confirmed */
  guint64 published;
  guint64 dropped;
  guint64 reconnects;
  guint64 errors;
  gboolean stopping; /* the publishing thread ends */
  gboolean unblock;  /* an EOS drain returns (flush or state change) */

  GThread *thread;
  gint wake[2];     /* pipe: the streaming thread wakes the publisher */
  gpointer backend; /* the method's state, publishing thread only */
};

GST_ELEMENT_REGISTER_DECLARE (earlyexitpublish);

G_END_DECLS
#endif /* __GST_EARLYEXIT_PUBLISH_H__ */
