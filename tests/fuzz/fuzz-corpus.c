/* gst-earlyexit: runs the fuzz entry point over files and directories given
 * on the command line, for builds without libFuzzer (the fuzz-corpus test). */
#include <glib.h>
#include <stdint.h>

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
run_file (const char *path)
{
  char *contents;
  gsize len;
  GError *error = NULL;

  if (!g_file_get_contents (path, &contents, &len, &error))
    g_error ("%s", error->message);
  LLVMFuzzerTestOneInput ((const uint8_t *)contents, len);
  g_free (contents);
}

int
main (int argc, char **argv)
{
  guint n = 0;

  LLVMFuzzerInitialize (&argc, &argv);
  for (int i = 1; i < argc; i++) {
    GDir *dir = g_dir_open (argv[i], 0, NULL);
    const char *name;

    if (!dir) {
      run_file (argv[i]);
      n++;
      continue;
    }
    while ((name = g_dir_read_name (dir))) {
      char *path = g_build_filename (argv[i], name, NULL);
      run_file (path);
      g_free (path);
      n++;
    }
    g_dir_close (dir);
  }
  g_print ("%u inputs ran through the safetensors fuzz target\n", n);
  return n ? 0 : 1;
}
