// Internal to kernels_db: the library's schema, kept as numbered migrations, and the version a
// file is at.
#pragma once

#include <sqlite3.h>

#include "common/common.hpp"

namespace kforge::db {

// The file's schema version (PRAGMA user_version): 0 for a new file, else the last migration
// applied.
int user_version(sqlite3* db);

// Applies the migrations from version `from` (the file's, read once when it was opened) to
// KernelStore::kSchemaVersion, each in its own transaction; a step another process applied
// meanwhile is skipped. Needs the kforge_* SQL functions (register_functions) and foreign keys
// off. An error names the migration that failed.
Status migrate(sqlite3* db, int from);

}  // namespace kforge::db
