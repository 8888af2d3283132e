package store

// SQLiteSchemaVersion is the schema version this build migrates a SQLite
// state database to: a database at a higher version was written by a newer
// Haven and is refused.
func SQLiteSchemaVersion() int { return len(migrations) }

// PostgresSchemaVersion is SQLiteSchemaVersion for PostgreSQL; the two
// stores keep separate migration lists, so their numbers may differ.
func PostgresSchemaVersion() int { return len(pgMigrations) }
