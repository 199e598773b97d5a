/*
 * A librdkafka mock Kafka cluster that tests can break on purpose. Prints the bootstrap servers as
 * its first stdout line, then reads one command per stdin line and answers each with one line,
 * "ok" or "error <reason>", so the caller can wait for a fault to be in place before it proceeds:
 *
 *   down B | up B            take broker B (or -1 = all) off the network / back
 *   rtt B MS                 add MS milliseconds to every response of broker B
 *   err API CODE N           fail the next N requests of API (name or number) with error CODE
 *   partitions TOPIC N       create TOPIC with N partitions (the mock auto-creates with 4)
 *   leader TOPIC P B         move partition P of TOPIC to broker B
 *   quit                     destroy the cluster and exit (so does end of stdin)
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Kafka protocol ApiKeys; rdkafka_protocol.h, which names them, is not a public header. */
static const struct {
  const char *name;
  int16_t key;
} apis[] = {
    {"Produce", 0},         {"Fetch", 1},         {"ListOffsets", 2},  {"Metadata", 3},
    {"OffsetCommit", 8},    {"OffsetFetch", 9},   {"FindCoordinator", 10},
    {"JoinGroup", 11},      {"Heartbeat", 12},    {"LeaveGroup", 13},  {"SyncGroup", 14},
    {"ApiVersions", 18},    {"InitProducerId", 22},
};

static int api_key(const char *s) {
  for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
    if (strcasecmp(s, apis[i].name) == 0) return apis[i].key;
  char *end;
  long n = strtol(s, &end, 10);
  return *end == '\0' && n >= 0 && n < 100 ? (int)n : -1;
}

static void reply(rd_kafka_resp_err_t err) {
  if (err) printf("error %s\n", rd_kafka_err2str(err));
  else printf("ok\n");
  fflush(stdout);
}

int main(int argc, char **argv) {
  int brokers = argc > 1 ? atoi(argv[1]) : 3;
  if (brokers < 1) brokers = 1;
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* The handle only hosts the cluster; it never connects anywhere. */
  if (rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "config: %s\n", errstr);
    return 1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    fprintf(stderr, "rd_kafka_new: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
    return 1;
  }
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);

  char line[1024];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = '\0';
    char cmd[32], a[512], b[64], c[64];
    int n = sscanf(line, "%31s %511s %63s %63s", cmd, a, b, c);
    if (n < 1) continue;
    if (strcmp(cmd, "quit") == 0) {
      reply(RD_KAFKA_RESP_ERR_NO_ERROR);
      break;
    } else if (strcmp(cmd, "down") == 0 && n == 2) {
      reply(rd_kafka_mock_broker_set_down(mc, atoi(a)));
    } else if (strcmp(cmd, "up") == 0 && n == 2) {
      reply(rd_kafka_mock_broker_set_up(mc, atoi(a)));
    } else if (strcmp(cmd, "rtt") == 0 && n == 3) {
      reply(rd_kafka_mock_broker_set_rtt(mc, atoi(a), atoi(b)));
    } else if (strcmp(cmd, "err") == 0 && n == 4) {
      int key = api_key(a);
      int count = atoi(c);
      if (key < 0 || count < 1) {
        printf("error unknown api or count: %s\n", line);
        fflush(stdout);
        continue;
      }
      rd_kafka_resp_err_t *errs = calloc((size_t)count, sizeof *errs);
      for (int i = 0; i < count; i++) errs[i] = (rd_kafka_resp_err_t)atoi(b);
      rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)count, errs);
      free(errs);
      reply(RD_KAFKA_RESP_ERR_NO_ERROR);
    } else if (strcmp(cmd, "partitions") == 0 && n == 3) {
      reply(rd_kafka_mock_topic_create(mc, a, atoi(b), 1));
    } else if (strcmp(cmd, "leader") == 0 && n == 4) {
      reply(rd_kafka_mock_partition_set_leader(mc, a, atoi(b), atoi(c)));
    } else {
      printf("error unknown command: %s\n", line);
      fflush(stdout);
    }
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
