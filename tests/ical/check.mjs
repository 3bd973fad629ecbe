// tests/ical/check.mjs ICS UPCOMING_JSON: expand every event of the
// calendar with ical.js (a real RFC 5545 reader, with the VTIMEZONEs the
// file carries and its RECURRENCE-ID overrides and EXDATEs) over the
// window the upcoming answer covers, and compare the occurrences, as UTC
// instants, with djamms's own. Exit 0 when they are the same.
import { readFileSync } from 'node:fs';
import ICAL from 'ical.js';

const [icsPath, upPath] = process.argv.slice(2);
const up = JSON.parse(readFileSync(upPath, 'utf8'));
const from = Date.parse(up.from), to = Date.parse(up.to);
const cal = new ICAL.Component(ICAL.parse(readFileSync(icsPath, 'utf8')));

for (const vtz of cal.getAllSubcomponents('vtimezone'))
	ICAL.TimezoneService.register(new ICAL.Timezone(vtz));

const masters = new Map(), exceptions = [];
for (const ve of cal.getAllSubcomponents('vevent')) {
	const ev = new ICAL.Event(ve);
	if (ev.isRecurrenceException()) exceptions.push(ev);
	else masters.set(ev.uid, ev);
}
for (const ex of exceptions) masters.get(ex.uid).relateException(ex);

const got = [];
for (const ev of masters.values()) {
	const it = ev.iterator();
	for (let t = it.next(); t; t = it.next()) {
		const d = ev.getOccurrenceDetails(t);
		const s = d.startDate.toJSDate().getTime(), e = d.endDate.toJSDate().getTime();
		if (s >= to) break;
		if (e > from && s < to)
			got.push(`${ev.uid.replace(/@djamms$/, '')} ${new Date(s).toISOString()} ${new Date(e).toISOString()}`);
	}
}
const want = up.occurrences.map(o =>
	`${o.entry_id} ${new Date(o.starts_at).toISOString()} ${new Date(o.ends_at).toISOString()}`);
got.sort();
want.sort();
const missing = want.filter(x => !got.includes(x)), extra = got.filter(x => !want.includes(x));
if (missing.length || extra.length || want.length === 0) {
	console.error(`ical.js: ${got.length} occurrences, upcoming: ${want.length}`);
	for (const m of missing) console.error(`  only in upcoming: ${m}`);
	for (const x of extra) console.error(`  only in the calendar: ${x}`);
	process.exit(1);
}
console.error(`ical.js expands the same ${got.length} occurrences as upcoming`);
