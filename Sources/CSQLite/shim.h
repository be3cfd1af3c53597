// The system SQLite (Debian: libsqlite3-dev to build, libsqlite3-0 to run), for the intake journal.
#include <sqlite3.h>
