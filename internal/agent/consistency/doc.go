// Package consistency turns a protected machine's live disks into a stable
// view the agent can read at leisure: reflink clones (FICLONE), filesystem
// freezes (FIFREEZE/FITHAW) and pre/post hook commands. It also reads
// extent maps (FIEMAP) so the agent can tell which chunks of a clone are
// physically the same blocks as the previous clone, i.e. unchanged.
package consistency
