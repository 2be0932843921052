/*-------------------------------------------------------------------------
 *
 * secret.c
 *		  The broker passcode and the TLS key password, read from files.
 *
 * A secret cannot be a setting: members of pg_read_all_settings read every
 * column of pg_settings (reset_val and boot_val too, which no show hook
 * masks), pg_file_settings shows the configuration files to whoever may
 * read them, and a reload that changes a value logs it in clear.  So, as
 * PostgreSQL does with PGPASSFILE and ssl_passphrase_command, the secrets
 * live in files that only the server's operating system user can read:
 * outbox.stomp_passcode_file and outbox.stomp_ssl_password_file name them.
 * A file must be a regular file owned by that user without any group or
 * world access (the rule PostgreSQL applies to ssl_key_file), and hold the
 * secret on one line, a final line break allowed.
 *
 * The settings hold the paths only, and have no check hook that looks at
 * the files: check hooks run in every process at every reload and again in
 * each parallel worker, where a file's state must not decide whether a
 * query runs.  The files are read where the secrets are used, as
 * PostgreSQL reads ssl_key_file when it sets up SSL:
 *
 * - send_event() reads them each time, and fails if one cannot be used;
 * - a worker reads them at start and at each reload (through
 *	 outbox_broker_settings()).  A file that cannot be used is refused with
 *	 a WARNING that names it, and the worker keeps the secret it read
 *	 before, as it keeps the last good value of any setting.  A worker that
 *	 never read a good one fails to connect, with the reason, in the log
 *	 and in outbox.status.
 *
 * outbox_secrets_generation() changes whenever a secret in force changes,
 * so that a worker knows to reconnect without comparing the secrets.
 *
 * Secrecy: no message of this file quotes a secret, only the file's path.
 * The secrets in force are kept in TopMemoryContext; a replaced one, and
 * every buffer a file was read into, is zeroed before it is freed.
 *
 * src/secret.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/fd.h"
#include "utils/memutils.h"

#include "outbox.h"

/* the longest secret accepted, in bytes: room for a token as a password */
#define MAX_SECRET_LEN		8192

/* One secret and the setting that names its file */
typedef struct SecretFile
{
	const char *what;			/* for messages: "passcode file" */
	char	  **path;			/* the setting's variable */
	const char *fallback;		/* in force without a file; NULL: none */
	bool		loaded;			/* value is in force */
	char	   *value;			/* in TopMemoryContext; NULL: none */
} SecretFile;

static SecretFile secrets[] = {
	[OUTBOX_SECRET_PASSCODE] = {
		"passcode file",
		&outbox_stomp_passcode_file,
		"guest",				/* django-outbox-pattern's default */
		false, NULL
	},
	[OUTBOX_SECRET_SSL_PASSWORD] = {
		"TLS key password file",
		&outbox_stomp_ssl_password_file,
		NULL,
		false, NULL
	},
};

static uint64 generation = 0;

static bool secret_file_stat_ok(const struct stat *st);
static const char *read_open_secret_file(int fd, struct stat *st, char *buf,
										 size_t bufsize, size_t *len,
										 bool *eof);
static bool check_secret_file_stat(SecretFile *secret, const struct stat *st,
								   int elevel, const char *hint);
static bool check_secret_contents(SecretFile *secret, char *buf,
								  size_t bufsize, size_t *len, bool eof,
								  int elevel, const char *hint);
static bool read_secret_file(SecretFile *secret, int elevel,
							 const char *hint, char **value);
static bool load_secret(SecretFile *secret, int elevel);
static void install_secret(SecretFile *secret, char *value);

/*
 * Whether an open file with status st may hold a secret: a regular file
 * owned by the server's user, without group or world access (the rule
 * PostgreSQL applies to ssl_key_file).  check_secret_file_stat() says why
 * not.
 */
static bool
secret_file_stat_ok(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_uid == geteuid() &&
		(st->st_mode & (S_IRWXG | S_IRWXO)) == 0;
}

/*
 * Stat the open secret file fd into *st and, only if it may hold a secret,
 * read it into buf (of bufsize bytes) until its end (*eof) or until it is
 * known to be too long.  Returns the failed operation ("stat", "read") with
 * errno set, or NULL.  Reading nothing from an unusable file means that a
 * file with the wrong rights is never copied into memory.
 */
static const char *
read_open_secret_file(int fd, struct stat *st, char *buf, size_t bufsize,
					  size_t *len, bool *eof)
{
	if (fstat(fd, st) != 0)
		return "stat";
	if (!secret_file_stat_ok(st))
		return NULL;
	while (!*eof && *len < bufsize)
	{
		ssize_t		n = read(fd, buf + *len, bufsize - *len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return "read";
		if (n == 0)
			*eof = true;
		*len += n;
	}
	return NULL;
}

/*
 * Report at elevel (with hint if given) why a secret file with status st
 * cannot hold a secret, and return false; true if it may.
 */
static bool
check_secret_file_stat(SecretFile *secret, const struct stat *st,
					   int elevel, const char *hint)
{
	const char *path = *secret->path;

	if (!S_ISREG(st->st_mode))
	{
		ereport(elevel,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" is not a regular file", secret->what, path),
				 hint ? errhint("%s", hint) : 0));
		return false;
	}
	if (st->st_uid != geteuid())
	{
		ereport(elevel,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" must be owned by the database user",
						secret->what, path),
				 errdetail("It must be owned by the operating system user the server runs as."),
				 hint ? errhint("%s", hint) : 0));
		return false;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO))
	{
		ereport(elevel,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" has group or world access",
						secret->what, path),
				 errdetail("File must have permissions u=rw (0600) or less."),
				 hint ? errhint("%s", hint) : 0));
		return false;
	}
	return true;
}

/*
 * Drop the final line break from the *len bytes read into buf (of bufsize
 * bytes) and check that the rest is one non-empty line of at most
 * MAX_SECRET_LEN bytes, the whole file (eof).  If not, zero buf, report at
 * elevel (with hint if given) and return false.
 */
static bool
check_secret_contents(SecretFile *secret, char *buf, size_t bufsize,
					  size_t *len, bool eof, int elevel, const char *hint)
{
	const char *path = *secret->path;

	/* one final line break (LF or CRLF) is not part of the secret */
	if (*len > 0 && buf[*len - 1] == '\n')
	{
		(*len)--;
		if (*len > 0 && buf[*len - 1] == '\r')
			(*len)--;
	}
	if (!eof || *len > MAX_SECRET_LEN)
	{
		explicit_bzero(buf, bufsize);
		ereport(elevel,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" is too long", secret->what, path),
				 errdetail("It must hold at most %d bytes.", MAX_SECRET_LEN),
				 hint ? errhint("%s", hint) : 0));
		return false;
	}
	if (memchr(buf, '\n', *len) != NULL || memchr(buf, '\r', *len) != NULL ||
		memchr(buf, '\0', *len) != NULL)
	{
		explicit_bzero(buf, bufsize);
		ereport(elevel,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" must hold one line", secret->what, path),
				 errdetail("The secret must be alone in the file, without line breaks or NUL bytes, optionally followed by one line break."),
				 hint ? errhint("%s", hint) : 0));
		return false;
	}

	/* an empty file is more likely one being rewritten than a secret */
	if (*len == 0)
	{
		ereport(elevel,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" is empty", secret->what, path),
				 errdetail("The secret must be alone on the file's first line."),
				 errhint("Write a new secret to another file and rename it into place.")));
		return false;
	}
	return true;
}

/*
 * Read the file of a secret into *value (palloc'd in TopMemoryContext).
 * If the file cannot be used, report why at elevel, with hint if given,
 * and return false (when elevel is below ERROR).
 */
static bool
read_secret_file(SecretFile *secret, int elevel, const char *hint,
				 char **value)
{
	const char *path = *secret->path;
	char		buf[MAX_SECRET_LEN + 3];	/* the secret, CR LF, one more */
	size_t		len = 0;
	bool		eof = false;
	struct stat st;
	int			fd;
	int			save_errno;
	const char *operation;

	/* O_NONBLOCK: a FIFO must not hang the open; it is refused below */
	fd = OpenTransientFile(path, O_RDONLY | O_NONBLOCK | PG_BINARY);
	if (fd < 0)
	{
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not open %s \"%s\": %m", secret->what, path),
				 hint ? errhint("%s", hint) : 0));
		return false;
	}
	operation = read_open_secret_file(fd, &st, buf, sizeof(buf), &len, &eof);
	save_errno = errno;
	CloseTransientFile(fd);
	errno = save_errno;

	if (operation != NULL)
	{
		explicit_bzero(buf, sizeof(buf));
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not %s %s \"%s\": %m", operation, secret->what,
						path),
				 hint ? errhint("%s", hint) : 0));
		return false;
	}
	if (!check_secret_file_stat(secret, &st, elevel, hint) ||
		!check_secret_contents(secret, buf, sizeof(buf), &len, eof,
							   elevel, hint))
		return false;

	*value = MemoryContextAlloc(TopMemoryContext, len + 1);
	memcpy(*value, buf, len);
	(*value)[len] = '\0';
	explicit_bzero(buf, sizeof(buf));
	return true;
}

/*
 * Put a secret in force (value NULL: none), counting a change.
 */
static void
install_secret(SecretFile *secret, char *value)
{
	bool		changed;

	changed = !secret->loaded ||
		(value == NULL) != (secret->value == NULL) ||
		(value != NULL && strcmp(value, secret->value) != 0);
	if (secret->value != NULL)
	{
		explicit_bzero(secret->value, strlen(secret->value));
		pfree(secret->value);
	}
	secret->value = value;
	secret->loaded = true;
	if (changed)
		generation++;
}

/*
 * Read a secret as its setting says now and put it in force; if its file
 * cannot be used, report it at elevel and keep the secret in force, if
 * any.  Returns whether the secret was read.
 */
static bool
load_secret(SecretFile *secret, int elevel)
{
	char	   *value = NULL;
	const char *hint = NULL;

	if ((*secret->path)[0] == '\0')
	{
		if (secret->fallback != NULL)
			value = MemoryContextStrdup(TopMemoryContext, secret->fallback);
		install_secret(secret, value);
		return true;
	}

	if (secret->loaded && elevel < ERROR)
		hint = "This worker keeps the secret it read before until the file can be used and the configuration is reloaded.";
	if (!read_secret_file(secret, elevel, hint, &value))
		return false;
	install_secret(secret, value);
	return true;
}

/*
 * Read every secret file again.  elevel ERROR makes a file that cannot be
 * used an error (send_event); below ERROR, a worker's reload, it is
 * reported at that level while the secret read before stays in force, and
 * not at all if there is none: using it then is the error.
 */
void
outbox_secrets_refresh(int elevel)
{
	int			i;

	for (i = 0; i < lengthof(secrets); i++)
	{
		SecretFile *secret = &secrets[i];

		(void) load_secret(secret,
						   (secret->loaded || elevel >= ERROR) ? elevel : DEBUG1);
	}
}

/*
 * The secret in force: the passcode, or the TLS key password (NULL: none).
 * If none was ever read, its file is read now, and an error says why it
 * cannot be used.
 */
const char *
outbox_secret(OutboxSecret which)
{
	SecretFile *secret = &secrets[which];

	if (!secret->loaded)
		(void) load_secret(secret, ERROR);
	return secret->value;
}

/*
 * A number that changes whenever a secret in force changes.
 */
uint64
outbox_secrets_generation(void)
{
	return generation;
}
