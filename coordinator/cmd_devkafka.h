/*
 * cmd_devkafka.h - `pgrollout dev-kafka`: an in-memory mock Kafka for demos. Returns the process
 * exit code (pgr/exitcode.h).
 */
#ifndef COORD_CMD_DEVKAFKA_H
#define COORD_CMD_DEVKAFKA_H

int coord_cmd_devkafka_main(int argc, char **argv);

#endif
