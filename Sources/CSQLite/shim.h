// The system SQLite, for the intake journal. With libsqlite3-dev installed its header is used; otherwise (a
// machine with only the Swift toolchain's own dependencies, which include the libsqlite3-0 runtime) the few
// stable C API entries the journal calls are declared here, as sqlite3.h declares them.
#if __has_include(<sqlite3.h>)
#include <sqlite3.h>
#else
#include <stdint.h>
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
typedef int64_t sqlite3_int64;
typedef void (*sqlite3_destructor_type)(void *);
#define SQLITE_OK 0
#define SQLITE_BUSY 5
#define SQLITE_ROW 100
#define SQLITE_DONE 101
#define SQLITE_OPEN_READWRITE 0x00000002
#define SQLITE_OPEN_CREATE 0x00000004
#define SQLITE_OPEN_NOMUTEX 0x00008000
int sqlite3_open_v2(const char *filename, sqlite3 **db, int flags, const char *vfs);
int sqlite3_close(sqlite3 *db);
const char *sqlite3_errmsg(sqlite3 *db);
int sqlite3_exec(sqlite3 *db, const char *sql, int (*callback)(void *, int, char **, char **), void *argument, char **errmsg);
int sqlite3_busy_timeout(sqlite3 *db, int milliseconds);
int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int bytes, sqlite3_stmt **statement, const char **tail);
int sqlite3_step(sqlite3_stmt *statement);
int sqlite3_reset(sqlite3_stmt *statement);
int sqlite3_finalize(sqlite3_stmt *statement);
int sqlite3_bind_blob(sqlite3_stmt *statement, int index, const void *value, int bytes, void (*destructor)(void *));
int sqlite3_bind_int64(sqlite3_stmt *statement, int index, sqlite3_int64 value);
sqlite3_int64 sqlite3_last_insert_rowid(sqlite3 *db);
const void *sqlite3_column_blob(sqlite3_stmt *statement, int column);
int sqlite3_column_bytes(sqlite3_stmt *statement, int column);
sqlite3_int64 sqlite3_column_int64(sqlite3_stmt *statement, int column);
#endif
