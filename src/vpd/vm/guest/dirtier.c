/*
 * vpd-dirtier: keeps a block of guest memory changing at a chosen rate and
 * proves, page by page, that it still holds what was last written to it.
 *
 * Live migration must carry every page the guest dirties; a page that arrives
 * stale or misplaced shows up here as a mismatch. Each pass ("generation")
 * checks a page against the previous generation's pattern, then rewrites it
 * with the current one. Patterns depend on (page index, generation), so a page
 * from another place or another pass is caught too.
 *
 * usage: vpd-dirtier SIZE_MIB RATE_MIB_S STATUS_FILE   (RATE 0 = unthrottled)
 *
 * Prints "vpd-dirty gen=N errors=E rate=R" about once a second on stdout and
 * writes the same line to STATUS_FILE (atomically, via rename). gen counts
 * completed passes, errors counts mismatching pages, rate is MiB/s written
 * since the previous report. Each mismatch (up to a cap per pass, to keep a
 * slow serial console usable) is printed as
 * "VPD-DIRTY-ERROR page=P expected=X got=Y" with the first differing word.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	PAGE_BYTES = 4096,
	WORDS_PER_PAGE = PAGE_BYTES / sizeof(uint64_t),
	/* Pages written between clock checks: fine enough pacing, cheap enough. */
	PAGES_PER_STEP = 16,
	MAX_ERROR_LINES_PER_GENERATION = 16,
};

static const double REPORT_INTERVAL_S = 1.0;
static const double MIB = 1024.0 * 1024.0;

/* splitmix64's finaliser: neighbouring inputs give unrelated outputs. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t pattern_word(uint64_t page_seed, size_t word)
{
	return page_seed ^ (word * 0x9e3779b97f4a7c15ULL);
}

static uint64_t page_seed(size_t page, uint64_t generation)
{
	return mix64(((uint64_t)page << 24) ^ (generation * 0xd6e8feb86659fd93ULL));
}

static void fill_page(uint64_t *words, size_t page, uint64_t generation)
{
	uint64_t seed = page_seed(page, generation);
	for (size_t i = 0; i < WORDS_PER_PAGE; i++)
		words[i] = pattern_word(seed, i);
}

/* Returns the index of the first word that differs, or -1 if the page is intact. */
static long first_bad_word(const uint64_t *words, size_t page, uint64_t generation)
{
	uint64_t seed = page_seed(page, generation);
	for (size_t i = 0; i < WORDS_PER_PAGE; i++)
		if (words[i] != pattern_word(seed, i))
			return (long)i;
	return -1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double seconds)
{
	struct timespec ts;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int parse_count(const char *text, unsigned long *value)
{
	char *end;
	errno = 0;
	*value = strtoul(text, &end, 10);
	return errno == 0 && end != text && *end == '\0' && text[0] != '-';
}

static void report(const char *status_path, uint64_t generations, uint64_t errors, double rate_mib_s)
{
	char line[128];
	snprintf(line, sizeof(line), "vpd-dirty gen=%" PRIu64 " errors=%" PRIu64 " rate=%.1f\n",
		 generations, errors, rate_mib_s);
	fputs(line, stdout);

	/* Readers (the command channel) must never see a half-written status. */
	char tmp_path[4096];
	snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", status_path);
	FILE *status = fopen(tmp_path, "w");
	if (status == NULL)
		return;
	fputs(line, status);
	if (fclose(status) == 0)
		rename(tmp_path, status_path);
}

int main(int argc, char **argv)
{
	unsigned long size_mib, rate_mib_s;
	if (argc != 4 || !parse_count(argv[1], &size_mib) || !parse_count(argv[2], &rate_mib_s) || size_mib == 0) {
		fprintf(stderr, "usage: %s SIZE_MIB RATE_MIB_S STATUS_FILE (SIZE >= 1, RATE 0 = unthrottled)\n",
			argv[0]);
		return 2;
	}
	const char *status_path = argv[3];
	setvbuf(stdout, NULL, _IOLBF, 0);

	size_t pages = (size_t)size_mib * (size_t)(MIB / PAGE_BYTES);
	uint64_t *memory = malloc(pages * PAGE_BYTES);
	if (memory == NULL) {
		fprintf(stderr, "vpd-dirtier: cannot allocate %lu MiB\n", size_mib);
		return 1;
	}

	uint64_t completed_generations = 0, errors = 0;
	double window_start = now_s();
	size_t window_pages = 0;
	report(status_path, completed_generations, errors, 0.0);

	for (uint64_t generation = 1;; generation++) {
		unsigned error_lines = 0;
		for (size_t page = 0; page < pages; page++) {
			uint64_t *words = memory + page * WORDS_PER_PAGE;
			/* Generation 1 is the first fill: nothing was written before it. */
			if (generation > 1) {
				long bad = first_bad_word(words, page, generation - 1);
				if (bad >= 0) {
					errors++;
					if (error_lines++ < MAX_ERROR_LINES_PER_GENERATION)
						printf("VPD-DIRTY-ERROR page=%zu expected=0x%016" PRIx64 " got=0x%016" PRIx64 "\n",
						       page, pattern_word(page_seed(page, generation - 1), (size_t)bad),
						       words[bad]);
				}
			}
			fill_page(words, page, generation);

			if (++window_pages % PAGES_PER_STEP != 0)
				continue;
			double written_mib = (double)window_pages * PAGE_BYTES / MIB;
			double elapsed = now_s() - window_start;
			if (rate_mib_s > 0 && written_mib / (double)rate_mib_s > elapsed) {
				sleep_s(written_mib / (double)rate_mib_s - elapsed);
				elapsed = now_s() - window_start;
			}
			if (elapsed >= REPORT_INTERVAL_S) {
				report(status_path, completed_generations, errors, written_mib / elapsed);
				/* Pacing restarts each window, so a stall (e.g. a paused
				 * guest) is not followed by a catch-up burst. */
				window_start = now_s();
				window_pages = 0;
			}
		}
		completed_generations = generation;
	}
}
