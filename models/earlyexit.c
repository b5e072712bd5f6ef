/* gst-earlyexit: the `earlyexit` command-line tool.
 *
 *   earlyexit features --kind vggish|sc|gtzan --audio IN.wav --out OUT.npy
 *   earlyexit info MODEL [--json]
 *   earlyexit run MODEL --image IMG [--audio WAV] [--exits LIST] [--json]
 *   earlyexit evaluate MODEL --data DIR [--deadline MS|uniform:LO:HI]
 *       [--policy anytime,confidence,fixed,full] [--json]
 *   earlyexit calibrate MODEL --data DIR|random:N --out OUT [--method M]
 *
 * Each subcommand lives in its own ee-cmd-*.c file and parses its own options.
 */
#include <stdio.h>
#include <string.h>

#include "ee-cmds.h"

typedef struct
{
  const char *name;
  int (*run) (int argc, char **argv);
  const char *summary;
} Command;

static const Command commands[] = {
  { "features", ee_cmd_features,
    "compute audio features of a WAV file into a .npy tensor" },
  { "info", ee_cmd_info,
    "describe a model file: architecture, input size, exits, parameters, "
    "FLOPs" },
  { "run", ee_cmd_run,
    "run one image (+ audio) through a model and print every exit's result" },
  { "evaluate", ee_cmd_evaluate,
    "a classifier's accuracy, FLOPs and time under deadlines, per policy" },
  { "calibrate", ee_cmd_calibrate,
    "int8 scales for the CPU's convolutions, into a copy of a model file" },
};

static void
usage (FILE *out)
{
  fprintf (out, "usage: earlyexit COMMAND [OPTIONS]\n\ncommands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf (out,
           "\n'earlyexit COMMAND --help' describes a command's options.\n");
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    usage (stderr);
    return 2;
  }
  if (!strcmp (argv[1], "--help") || !strcmp (argv[1], "-h")
      || !strcmp (argv[1], "help")) {
    usage (stdout);
    return 0;
  }
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (!strcmp (argv[1], commands[i].name))
      return commands[i].run (argc - 1, argv + 1);
  fprintf (stderr, "earlyexit: unknown command '%s'\n\n", argv[1]);
  usage (stderr);
  return 2;
}
