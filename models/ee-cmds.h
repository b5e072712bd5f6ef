/* gst-earlyexit: subcommands of the `earlyexit` tool. Each takes argv with
 * argv[0] = the subcommand name and returns the process exit status. */
#ifndef EE_CMDS_H
#define EE_CMDS_H

#include <glib.h>

int ee_cmd_features (int argc, char **argv);
int ee_cmd_info (int argc, char **argv);
int ee_cmd_run (int argc, char **argv);
int ee_cmd_evaluate (int argc, char **argv);
int ee_cmd_calibrate (int argc, char **argv);

#endif /* EE_CMDS_H */
