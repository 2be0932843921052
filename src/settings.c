/*-------------------------------------------------------------------------
 *
 * settings.c
 *		  The outbox.* configuration parameters.
 *
 * Every setting of django-outbox-pattern has a GUC here.  Each value is
 * checked when it is set: a check hook refuses a bad value with a detail
 * that says what is wrong, and the GUC machinery names the setting.  A
 * worker that reloads its configuration therefore never sees a bad value;
 * it keeps the last good one.
 *
 * The broker's passcode and the TLS key's password are not settings: a
 * setting's value can be read by members of pg_read_all_settings and is
 * logged when a reload changes it.  They are read from the files that
 * outbox.stomp_passcode_file and outbox.stomp_ssl_password_file name (see
 * secret.c).  The settings that held them, outbox.stomp_passcode and
 * outbox.stomp_ssl_password, are kept as names that refuse any value with
 * a message pointing at the files and never quoting the value, so that a
 * postgresql.conf written for an older outbox is told what to change.
 *
 * src/settings.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include "utils/guc.h"
#include "utils/varlena.h"

#include "outbox.h"
#include "stomp/stomp_number.h"

/* the largest heart-beat interval accepted, in milliseconds: one hour */
#define MAX_HEARTBEAT_MS	3600000
/* the longest correlation id accepted, in bytes */
#define MAX_CORRELATION_ID_LEN	255

char	   *outbox_stomp_host_and_ports = NULL;
char	   *outbox_stomp_username = NULL;
char	   *outbox_stomp_passcode_file = NULL;
char	   *outbox_stomp_vhost = NULL;
char	   *outbox_stomp_heartbeats = NULL;
bool		outbox_stomp_use_ssl = false;
char	   *outbox_stomp_key_file = NULL;
char	   *outbox_stomp_cert_file = NULL;
char	   *outbox_stomp_ca_certs = NULL;
int			outbox_stomp_ssl_min_protocol = 0;
char	   *outbox_stomp_ssl_password_file = NULL;
bool		outbox_stomp_verify_hostname = true;
char	   *outbox_stomp_queue_headers = NULL;
bool		outbox_exclusive_queue = false;
int			outbox_maximum_backoff = 3600;
int			outbox_maximum_retry_attempts = 50;
int			outbox_pause_for_retry = 240;
int			outbox_wait_retry = 60;
int			outbox_published_chunk_size = 200;
int			outbox_days_to_keep_data = 30;
int			outbox_remove_data_interval = 86400;
char	   *outbox_generate_headers = NULL;
int			outbox_poll_interval = 1000;
int			outbox_consumer_shutdown_timeout = 90;
int			outbox_consumer_hold_timeout = 15 * 60 * 1000;
char	   *outbox_database_name = NULL;
int			outbox_send_timeout = 30;
char	   *outbox_correlation_id = NULL;
int			outbox_max_message_size = 64 * 1024 * 1024;

/* the retired secret settings; they only ever hold "" */
static char *retired_passcode = NULL;
static char *retired_ssl_password = NULL;

static const struct config_enum_entry ssl_protocol_options[] = {
	{"TLSv1", 10, false},
	{"TLSv1.1", 11, false},
	{"TLSv1.2", 12, false},
	{"TLSv1.3", 13, false},
	{NULL, 0, false}
};

static bool check_host_and_ports(char **newval, void **extra, GucSource source);
static bool check_connect_header(char **newval, void **extra, GucSource source);
static bool check_vhost(char **newval, void **extra, GucSource source);
static bool check_heartbeats(char **newval, void **extra, GucSource source);
static void trim_spaces(const char **start, const char **end);
static bool queue_header_value_valid(const char *name, size_t len,
									 const char *value, const char *end);
static bool check_queue_headers(char **newval, void **extra, GucSource source);
static const char *scan_identifier(const char *p);
static bool check_function_name(char **newval, void **extra, GucSource source);
static bool check_database_names(char **newval, void **extra, GucSource source);
static bool check_correlation_id(char **newval, void **extra, GucSource source);
static bool refuse_retired(const char *name, const char *replacement,
						   const char *newval);
static bool check_retired_passcode(char **newval, void **extra,
								   GucSource source);
static bool check_retired_ssl_password(char **newval, void **extra,
									   GucSource source);

/*
 * Return the name of an outbox.stomp_ssl_min_protocol value, e.g. "TLSv1.2".
 */
const char *
outbox_ssl_protocol_name(int protocol)
{
	const struct config_enum_entry *entry;

	for (entry = ssl_protocol_options; entry->name != NULL; entry++)
	{
		if (entry->val == protocol)
			return entry->name;
	}
	elog(ERROR, "unknown TLS protocol version %d", protocol);
	return NULL;				/* keep compiler quiet */
}

/*
 * Define every outbox.* setting; called once from _PG_init.
 */
void
outbox_define_settings(void)
{
	DefineCustomStringVariable("outbox.stomp_host_and_ports",
							   "Broker addresses to connect to, tried in order.",
							   "A comma-separated list of host:port; an IPv6 address is written in brackets, as [::1]:61613.",
							   &outbox_stomp_host_and_ports,
							   "127.0.0.1:61613",
							   PGC_SIGHUP, 0,
							   check_host_and_ports, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_username",
							   "User name the workers log in to the broker with.",
							   NULL,
							   &outbox_stomp_username,
							   "guest",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_connect_header, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_passcode_file",
							   "File holding the password the workers and send_event log in to the broker with.",
							   "Empty means the password \"guest\".  The file must be owned by the server's operating system user, with permissions u=rw (0600) or less; it is read when a connection is set up and on reload.",
							   &outbox_stomp_passcode_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_passcode",
							   "Retired: the passcode is read from outbox.stomp_passcode_file.",
							   NULL,
							   &retired_passcode,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_retired_passcode, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_vhost",
							   "Virtual host on the broker, sent as the STOMP host header.",
							   NULL,
							   &outbox_stomp_vhost,
							   "/",
							   PGC_SIGHUP, 0,
							   check_vhost, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_heartbeats",
							   "STOMP heart-beats as outgoing,incoming milliseconds; 0 disables a direction.",
							   NULL,
							   &outbox_stomp_heartbeats,
							   "10000,10000",
							   PGC_SIGHUP, 0,
							   check_heartbeats, NULL, NULL);

	DefineCustomBoolVariable("outbox.stomp_use_ssl",
							 "Connects to the broker over TLS.",
							 NULL,
							 &outbox_stomp_use_ssl,
							 false,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_key_file",
							   "File holding the private key of the client certificate for TLS.",
							   NULL,
							   &outbox_stomp_key_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_cert_file",
							   "File holding the client certificate for TLS.",
							   NULL,
							   &outbox_stomp_cert_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_ca_certs",
							   "File of CA certificates the broker's certificate is verified against.",
							   "Empty uses the system's default CA certificates.",
							   &outbox_stomp_ca_certs,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("outbox.stomp_ssl_min_protocol",
							 "Oldest TLS protocol version accepted.",
							 NULL,
							 &outbox_stomp_ssl_min_protocol,
							 12,
							 ssl_protocol_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_ssl_password_file",
							   "File holding the password of the client certificate's private key.",
							   "Empty means no password.  The file must be owned by the server's operating system user, with permissions u=rw (0600) or less; it is read when a connection is set up and on reload.",
							   &outbox_stomp_ssl_password_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_ssl_password",
							   "Retired: the key's password is read from outbox.stomp_ssl_password_file.",
							   NULL,
							   &retired_ssl_password,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_retired_ssl_password, NULL, NULL);

	DefineCustomBoolVariable("outbox.stomp_verify_hostname",
							 "Checks that the broker's TLS certificate names the host connected to.",
							 NULL,
							 &outbox_stomp_verify_hostname,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.stomp_queue_headers",
							   "Headers of the SUBSCRIBE frames that declare consumers' queues.",
							   "A comma-separated list of name:value. prefetch-count is how many unacknowledged messages the broker hands a consumer at once (500 by default, django-outbox-pattern's is 1); a consumer holds up to 1000 at once, and asks for 1000 when it is absent, 0 or more.",
							   &outbox_stomp_queue_headers,
							   "durable:true,auto-delete:false,prefetch-count:500",
							   PGC_SIGHUP, 0,
							   check_queue_headers, NULL, NULL);

	DefineCustomBoolVariable("outbox.exclusive_queue",
							 "Declares consumers' queues exclusive to their connection.",
							 NULL,
							 &outbox_exclusive_queue,
							 false,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.maximum_backoff",
							"Longest wait between two attempts to connect to the broker.",
							NULL,
							&outbox_maximum_backoff,
							3600, 1, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.maximum_retry_attempts",
							"Attempts to send a message the broker refuses before it is failed.",
							NULL,
							&outbox_maximum_retry_attempts,
							50, 1, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.pause_for_retry",
							"Pause before the later attempts to send a message the broker refused.",
							NULL,
							&outbox_pause_for_retry,
							240, 0, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.wait_retry",
							"Time between the later attempts to send a message the broker refused.",
							NULL,
							&outbox_wait_retry,
							60, 0, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.published_chunk_size",
							"Messages the publisher sends in one pass.",
							NULL,
							&outbox_published_chunk_size,
							200, 1, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.days_to_keep_data",
							"Days sent, failed and received messages are kept before they are deleted.",
							NULL,
							&outbox_days_to_keep_data,
							30, 1, 36500,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.remove_data_interval",
							"Time between two deletions of old messages.",
							NULL,
							&outbox_remove_data_interval,
							86400, 1, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.generate_headers",
							   "Function adding headers to every message.",
							   "It takes an outbox.published row and returns jsonb; empty means the built-in headers only.",
							   &outbox_generate_headers,
							   "",
							   PGC_SUSET, 0,
							   check_function_name, NULL, NULL);

	DefineCustomIntVariable("outbox.poll_interval",
							"Time between two looks at the outbox when no commit woke the publisher.",
							NULL,
							&outbox_poll_interval,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.consumer_shutdown_timeout",
							"Time a stopping consumer waits for the message in flight.",
							NULL,
							&outbox_consumer_shutdown_timeout,
							90, 0, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.consumer_hold_timeout",
							"Longest a message delivered to a consumer waits to be acknowledged.",
							"A message that its callback, or those before it, could keep past this is given back to the broker unrun. Keep it below RabbitMQ's consumer_timeout less the longest callback.",
							&outbox_consumer_hold_timeout,
							15 * 60 * 1000, 1000, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.database_name",
							   "Databases the outbox workers run in.",
							   "A comma-separated list of database names.",
							   &outbox_database_name,
							   "postgres",
							   PGC_POSTMASTER, 0,
							   check_database_names, NULL, NULL);

	DefineCustomIntVariable("outbox.send_timeout",
							"Longest wait of outbox.send_event() for the broker's receipt.",
							NULL,
							&outbox_send_timeout,
							30, 1, INT_MAX / 1000,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.correlation_id",
							   "Correlation id of the messages of this transaction (header dop-correlation-id).",
							   "Set it with SET LOCAL; empty gives each message a fresh UUID.",
							   &outbox_correlation_id,
							   "",
							   PGC_USERSET, 0,
							   check_correlation_id, NULL, NULL);

	/*
	 * Checked where a message is written (message.c), below RabbitMQ's own
	 * max_message_size (128 MiB by default, 512 MiB at most), so that a
	 * message the broker or the publisher's output buffer cannot take is
	 * refused then and there rather than stalling delivery.
	 */
	DefineCustomIntVariable("outbox.max_message_size",
							"Largest message outbox accepts, as its STOMP frame: body and headers.",
							"A message written to the outbox or sent with outbox.send_event() that is larger is refused.",
							&outbox_max_message_size,
							64 * 1024 * 1024, 1024, 512 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("outbox");
}

/*
 * outbox.stomp_host_and_ports: a non-empty list of host[:port], parsed as
 * the connection will parse it.
 */
static bool
check_host_and_ports(char **newval, void **extra, GucSource source)
{
	StompHostList hosts;
	char		error[STOMP_ERRMSG_SIZE];

	if (!stomp_host_list_parse(*newval, &hosts, error, sizeof(error)))
	{
		/* the client's messages are fragments: make a sentence of it */
		error[0] = pg_toupper((unsigned char) error[0]);
		GUC_check_errdetail("%s.", error);
		return false;
	}
	stomp_host_list_free(&hosts);
	return true;
}

/*
 * Return the first CR, LF or control character of value, or NULL.  Such
 * characters cannot travel in the broker's CONNECT frame.
 */
static const char *
find_control_character(const char *value)
{
	const char *p;

	for (p = value; *p; p++)
	{
		if ((unsigned char) *p < 0x20 || *p == 0x7F)
			return p;
	}
	return NULL;
}

/*
 * outbox.stomp_username: sent in CONNECT, which cannot carry line breaks or
 * control characters.
 */
static bool
check_connect_header(char **newval, void **extra, GucSource source)
{
	if (find_control_character(*newval) != NULL)
	{
		GUC_check_errdetail("It must not contain line breaks or other control characters.");
		return false;
	}
	return true;
}

/*
 * outbox.stomp_vhost: a non-empty name without control characters.
 */
static bool
check_vhost(char **newval, void **extra, GucSource source)
{
	if ((*newval)[0] == '\0')
	{
		GUC_check_errdetail("The virtual host must not be empty; the broker's default is \"/\".");
		return false;
	}
	return check_connect_header(newval, extra, source);
}

/*
 * outbox.stomp_heartbeats: "outgoing,incoming" in milliseconds.
 */
static bool
check_heartbeats(char **newval, void **extra, GucSource source)
{
	int64_t		outgoing;
	int64_t		incoming;

	if (!stomp_heartbeat_parse(*newval, &outgoing, &incoming) ||
		outgoing > MAX_HEARTBEAT_MS || incoming > MAX_HEARTBEAT_MS)
	{
		GUC_check_errdetail("It must be two numbers of milliseconds from 0 to %d, outgoing and incoming, separated by a comma, as in \"10000,10000\".",
							MAX_HEARTBEAT_MS);
		return false;
	}
	return true;
}

/*
 * The headers outbox's consumers set themselves on SUBSCRIBE, which
 * outbox.stomp_queue_headers may not give.
 */
static const char *const consumer_own_headers[] = {
	"id", "destination", "ack", "receipt", "content-length",
	"x-queue-name", "x-dead-letter-exchange", "x-dead-letter-routing-key",
	"exclusive"
};

/*
 * Whether a header name (len bytes) is one outbox's consumers set
 * themselves on SUBSCRIBE.
 */
bool
outbox_queue_header_reserved(const char *name, size_t len)
{
	int			i;

	for (i = 0; i < lengthof(consumer_own_headers); i++)
	{
		if (strlen(consumer_own_headers[i]) == len &&
			memcmp(name, consumer_own_headers[i], len) == 0)
			return true;
	}
	return false;
}

/*
 * Trim the spaces around the text [*start, *end).
 */
static void
trim_spaces(const char **start, const char **end)
{
	while (*start < *end && **start == ' ')
		(*start)++;
	while (*end > *start && (*end)[-1] == ' ')
		(*end)--;
}

/*
 * Check the value [value, end) of item name (len bytes) of
 * outbox.stomp_queue_headers, spaces around it ignored: a queue that
 * loses what it holds (durable other than true, auto-delete other than
 * false) is refused, and so is a count that is not a whole number, which
 * RabbitMQ would refuse on every SUBSCRIBE.  False with a detail if not.
 */
static bool
queue_header_value_valid(const char *name, size_t len, const char *value,
						 const char *end)
{
	static const char *const counts[] = {
		"prefetch-count", "x-max-length", "x-max-length-bytes",
		"x-message-ttl", "x-expires", "x-max-priority"
	};
	int			i;

	trim_spaces(&value, &end);
	if (len == strlen("durable") && memcmp(name, "durable", len) == 0 &&
		!(end - value == 4 && memcmp(value, "true", 4) == 0))
	{
		GUC_check_errdetail("Queues must be durable:true: a queue that is not loses its messages when the broker restarts.");
		return false;
	}
	if (len == strlen("auto-delete") && memcmp(name, "auto-delete", len) == 0 &&
		!(end - value == 5 && memcmp(value, "false", 5) == 0))
	{
		GUC_check_errdetail("Queues must be auto-delete:false: a queue deleted with its last consumer loses the messages it holds.");
		return false;
	}
	for (i = 0; i < lengthof(counts); i++)
	{
		if (len == strlen(counts[i]) && memcmp(name, counts[i], len) == 0 &&
			!stomp_parse_decimal(value, end - value, PG_INT64_MAX, NULL))
		{
			GUC_check_errdetail("Header \"%s\" must be a whole number from 0 to " INT64_FORMAT ".",
								counts[i], PG_INT64_MAX);
			return false;
		}
	}
	return true;
}

/*
 * outbox.stomp_queue_headers: a comma-separated list of at most
 * OUTBOX_MAX_QUEUE_HEADERS name:value items, spaces around names and
 * values ignored, each name non-empty, given once and not one the
 * consumers set themselves, no control characters anywhere.  Empty is
 * allowed.  The consumers build their SUBSCRIBE frames from it in arrays
 * of fixed size (consumer_subscribe.c reads it the same way).
 */
static bool
check_queue_headers(char **newval, void **extra, GucSource source)
{
	const char *names[OUTBOX_MAX_QUEUE_HEADERS];
	size_t		name_lens[OUTBOX_MAX_QUEUE_HEADERS];
	const char *item = *newval;
	int			n = 0;

	if (find_control_character(*newval) != NULL)
	{
		GUC_check_errdetail("It must not contain line breaks or other control characters.");
		return false;
	}
	while (*item != '\0')
	{
		const char *end = strchr(item, ',');
		const char *item_end = end ? end : item + strlen(item);
		const char *colon = memchr(item, ':', item_end - item);
		const char *name = item;
		const char *name_end = colon;
		int			i;

		if (colon != NULL)
			trim_spaces(&name, &name_end);
		if (colon == NULL || name == name_end)
		{
			GUC_check_errdetail("\"%.*s\" is not of the form name:value.",
								(int) (item_end - item), item);
			return false;
		}
		if (outbox_queue_header_reserved(name, name_end - name))
		{
			GUC_check_errdetail("Header \"%.*s\" is set by outbox's consumers themselves.",
								(int) (name_end - name), name);
			return false;
		}
		if (n == OUTBOX_MAX_QUEUE_HEADERS)
		{
			GUC_check_errdetail("It may hold at most %d headers.",
								OUTBOX_MAX_QUEUE_HEADERS);
			return false;
		}
		if (!queue_header_value_valid(name, name_end - name, colon + 1,
									  item_end))
			return false;
		names[n] = name;
		name_lens[n] = name_end - name;
		for (i = 0; i < n; i++)
		{
			if (name_lens[i] == name_lens[n] &&
				memcmp(names[i], name, name_lens[n]) == 0)
			{
				GUC_check_errdetail("Header \"%.*s\" is given more than once.",
									(int) name_lens[n], name);
				return false;
			}
		}
		n++;
		if (end == NULL)
			break;
		item = end + 1;
		if (*item == '\0')
		{
			GUC_check_errdetail("It must not end with a comma.");
			return false;
		}
	}
	return true;
}

/*
 * Return the end of the SQL identifier starting at p (quoted or not), or
 * NULL if there is none.
 */
static const char *
scan_identifier(const char *p)
{
	if (*p == '"')
	{
		for (p++; *p != '\0'; p++)
		{
			if (*p == '"')
			{
				if (p[1] != '"')
					return p + 1;
				p++;
			}
		}
		return NULL;
	}
	if (!(isalpha((unsigned char) *p) || *p == '_' || IS_HIGHBIT_SET(*p)))
		return NULL;
	for (p++; isalnum((unsigned char) *p) || *p == '_' || *p == '$' ||
		 IS_HIGHBIT_SET(*p); p++)
		;
	return p;
}

/*
 * outbox.generate_headers: empty, or a function name, optionally
 * schema-qualified.  Whether the function exists is checked when it is
 * called, since settings are also read outside any database.
 */
static bool
check_function_name(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;

	if (*p == '\0')
		return true;

	p = scan_identifier(p);
	if (p != NULL && *p == '.')
		p = scan_identifier(p + 1);
	if (p == NULL || *p != '\0')
	{
		GUC_check_errdetail("It must be a function name, optionally schema-qualified, as in \"myschema.my_headers\".");
		return false;
	}
	return true;
}

/*
 * outbox.database_name: a non-empty comma-separated list of names, each
 * named once (a database has one publisher).  Names are compared as the
 * workers use them: quotes removed, case kept.
 */
static bool
check_database_names(char **newval, void **extra, GucSource source)
{
	char	   *rawnames = pstrdup(*newval);
	List	   *names;
	ListCell   *lc;
	bool		ok;

	ok = SplitGUCList(rawnames, ',', &names) && names != NIL;
	if (!ok)
		GUC_check_errdetail("It must be a comma-separated list of one or more database names.");
	foreach(lc, ok ? names : NIL)
	{
		const char *name = lfirst(lc);
		ListCell   *later;

		if (strlen(name) >= NAMEDATALEN)
		{
			GUC_check_errdetail("Database name \"%s\" is longer than %d bytes.",
								name, NAMEDATALEN - 1);
			ok = false;
			break;
		}

		for_each_cell(later, names, lnext(names, lc))
		{
			if (strcmp(name, lfirst(later)) == 0)
			{
				GUC_check_errdetail("Database \"%s\" is listed more than once.",
									name);
				ok = false;
				break;
			}
		}
		if (!ok)
			break;
	}
	list_free(names);
	pfree(rawnames);
	return ok;
}

/*
 * outbox.correlation_id: at most MAX_CORRELATION_ID_LEN bytes, no control
 * characters, as it becomes a header of every message.  A value too long
 * is not quoted back (PostgreSQL's message would quote all of it).
 */
static bool
check_correlation_id(char **newval, void **extra, GucSource source)
{
	size_t		len = strlen(*newval);

	if (len > MAX_CORRELATION_ID_LEN)
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("value for parameter \"outbox.correlation_id\" is too long (%zu bytes)",
						 len);
		GUC_check_errdetail("It must be at most %d bytes long.",
							MAX_CORRELATION_ID_LEN);
		return false;
	}
	if (find_control_character(*newval) != NULL)
	{
		GUC_check_errdetail("It must not contain line breaks or other control characters.");
		return false;
	}
	return true;
}

/*
 * Refuse any value but "" for a retired secret setting, with a message that
 * never quotes the value: GUC_check_errmsg replaces PostgreSQL's "invalid
 * value for parameter", which would.  In postgresql.conf this is a WARNING
 * at server start (the value is dropped) and a LOG line at reload.
 */
static bool
refuse_retired(const char *name, const char *replacement, const char *newval)
{
	if (newval == NULL || newval[0] == '\0')
		return true;
	GUC_check_errcode(ERRCODE_FEATURE_NOT_SUPPORTED);
	GUC_check_errmsg("parameter \"%s\" is no longer supported", name);
	GUC_check_errdetail("Its value is ignored: a setting can be read by members of pg_read_all_settings, and is logged when a reload changes it.");
	GUC_check_errhint("Put the secret alone in a file that only the server's operating system user can read (mode 0600), set %s to its path, and remove %s from the configuration.",
					  replacement, name);
	return false;
}

/*
 * outbox.stomp_passcode: retired, see refuse_retired().
 */
static bool
check_retired_passcode(char **newval, void **extra, GucSource source)
{
	return refuse_retired("outbox.stomp_passcode",
						  "outbox.stomp_passcode_file", *newval);
}

/*
 * outbox.stomp_ssl_password: retired, see refuse_retired().
 */
static bool
check_retired_ssl_password(char **newval, void **extra, GucSource source)
{
	return refuse_retired("outbox.stomp_ssl_password",
						  "outbox.stomp_ssl_password_file", *newval);
}
