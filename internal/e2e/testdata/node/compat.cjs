// compat.cjs: the same statements through two Node.js drivers (the npm
// packages mysql2 and mariadb), once against MariaDB directly and once through
// `scalestack mysqlproxy`, for issue 16 ("behave like the server").
//
// Each case opens its own connections on one target, returns a plain value
// (an answer, or {error: errno} for a refusal) and never a connection id or a
// time, so that the direct and the proxied answers must be equal. The cases
// judge nothing themselves: internal/e2e/nodecompat_test.go and
// scripts/driver-suites.sh compare the two answers.
//
// Input: the environment variable SCALESTACK_COMPAT_CONFIG holds JSON
//   {"targets": {"direct": T, "proxy": T}, "skipItems": [4, 5], "only": "regexp"}
// where T is {"host", "port", "user", "password", "database",
//             "other": {"user", "password"}}: "other" is a second account
// that COM_CHANGE_USER switches to (on the server for direct, in the proxy's
// users file for proxy), and "database" a schema both accounts may use, with
// e2e_cli (or "otherDatabase") a second one.
// Output: one JSON line per case on stdout:
//   {"name", "driver", "item", "direct", "proxy", "same", "ms": [direct, proxy]}
// then a summary line on stderr. Exit status 0 whatever the answers (2 on a
// usage error): the caller decides what a difference means.
'use strict';

const crypto = require('node:crypto');
const mysql2 = require('mysql2/promise');

// The mariadb package (3.5) needs Node.js 20 or later; Debian 12's own
// nodejs is 18, where only mysql2's cases run (said on stderr).
const nodeMajor = Number(process.versions.node.split('.')[0]);
const mariadb = nodeMajor >= 20 ? require('mariadb') : null;

const CASE_TIMEOUT_MS = 30000;
const LONG = 16 * 1024 * 1024 + 1024; // over one 16 MiB wire packet (issue item 2)

// Text in each character set's own repertoire (item 1); the drivers encode
// it with iconv-lite for the connection's character set.
const TEXTS = {
  latin1: 'Grüße, señor',
  latin2: 'Łódź, żółw',
  cp1257: 'Ąžuolas, ėglė',
  sjis: '日本語のテキスト',
  koi8r: 'Привет, мир',
  cp1251: 'Здравствуй',
  greek: 'Καλημέρα',
  utf8mb4: 'emoji 😀 日本 Ω',
};
// [mysql2 charset constant, mariadb collation name, text key]
const COLLATIONS = [
  ['LATIN1_GENERAL_CI', 'latin1_general_ci', 'latin1'],
  ['LATIN2_GENERAL_CI', 'latin2_general_ci', 'latin2'],
  ['CP1257_BIN', 'cp1257_bin', 'cp1257'],
  ['SJIS_JAPANESE_CI', 'sjis_japanese_ci', 'sjis'],
  ['KOI8R_GENERAL_CI', 'koi8r_general_ci', 'koi8r'],
  ['CP1251_GENERAL_CI', 'cp1251_general_ci', 'cp1251'],
  ['GREEK_GENERAL_CI', 'greek_general_ci', 'greek'],
  ['UTF8MB4_UNICODE_CI', 'utf8mb4_unicode_ci', 'utf8mb4'],
];

// ---- the two drivers behind one small interface ----

const drivers = {
  mysql2: {
    async connect(t, opts = {}) {
      const o = {
        host: t.host,
        port: t.port,
        user: t.user,
        password: t.password,
        connectTimeout: 10000,
        supportBigNumbers: true,
        bigNumberStrings: true,
        dateStrings: true,
      };
      if (opts.database !== null) o.database = opts.database || t.database;
      if (opts.collation) o.charset = opts.collation[0];
      if (opts.multipleStatements) o.multipleStatements = true;
      if (opts.foundRows === false) o.flags = ['-FOUND_ROWS'];
      const c = await mysql2.createConnection(o);
      c.on('error', () => {}); // a killed connection must not crash the script
      return {
        raw: c,
        threadId: () => c.threadId,
        async query(sql, params) {
          const [rows] = await c.query(sql, params);
          return rows;
        },
        async execute(sql, params) {
          const [rows] = await c.execute(sql, params);
          return rows;
        },
        async prepare(sql) {
          const s = await c.prepare(sql);
          return { execute: async (p) => (await s.execute(p))[0], close: () => s.close() };
        },
        changeUser: ({ collation, ...o2 }) => c.changeUser(collation ? { ...o2, charset: collation[0] } : o2),
        close: () => c.end().catch(() => c.destroy()),
        destroy: () => c.destroy(),
      };
    },
    affected: (r) => ({ affectedRows: Number(r.affectedRows), changedRows: r.changedRows }),
  },
  mariadb: {
    async connect(t, opts = {}) {
      const o = {
        host: t.host,
        port: t.port,
        user: t.user,
        password: t.password,
        connectTimeout: 10000,
        bigIntAsNumber: false,
        supportBigNumbers: true,
        bigNumberStrings: true,
        dateStrings: true,
        maxAllowedPacket: 64 * 1024 * 1024,
      };
      if (opts.database !== null) o.database = opts.database || t.database;
      if (opts.collation) o.collation = opts.collation[1];
      if (opts.multipleStatements) o.multipleStatements = true;
      if (opts.foundRows === false) o.foundRows = false;
      const c = await mariadb.createConnection(o);
      c.on('error', () => {});
      return {
        raw: c,
        threadId: () => c.threadId,
        query: (sql, params) => c.query(sql, params),
        execute: (sql, params) => c.execute(sql, params),
        async prepare(sql) {
          const s = await c.prepare(sql);
          return { execute: (p) => s.execute(p), close: () => s.close() };
        },
        changeUser: ({ collation, ...o2 }) => c.changeUser(collation ? { ...o2, collation: collation[1] } : o2),
        close: () => c.end().catch(() => c.destroy()),
        destroy: () => c.destroy(),
      };
    },
    affected: (r) => ({ affectedRows: Number(r.affectedRows) }),
  },
};

// answer turns a result (rows or an OK result) into plain JSON.
function answer(r) {
  if (Array.isArray(r)) {
    return r.map((row) => {
      if (row === null || typeof row !== 'object') return row;
      const o = {};
      for (const [k, v] of Object.entries(row)) o[k] = plain(v);
      return o;
    });
  }
  if (r && typeof r === 'object' && 'affectedRows' in r) {
    return { affectedRows: Number(r.affectedRows), warningStatus: r.warningStatus };
  }
  return plain(r);
}

function plain(v) {
  if (typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v)) return 'hex:' + v.toString('hex');
  if (v instanceof Date) return v.toISOString();
  return v;
}

// refusal is what a failed call tells the client: the server's error number,
// or that the connection was lost (no errno).
function refusal(e) {
  if (e && e.errno) return { error: e.errno };
  return { error: 'closed', code: (e && e.code) || String(e) };
}

async function attempt(f) {
  try {
    return await f();
  } catch (e) {
    return refusal(e);
  }
}

// ---- the cases: [name, item (0: no numbered cause), drivers, body] ----

// stdout carries only the JSON lines: what a driver prints goes to stderr.
console.log = console.info = console.warn = (...a) => process.stderr.write(a.join(' ') + '\n');

const cases = [];
function add(name, item, driverNames, body) {
  for (const d of driverNames) {
    if (d === 'mariadb' && !mariadb) continue;
    cases.push({ name: `${d}/${name}`, driver: d, item, body });
  }
}
const BOTH = ['mysql2', 'mariadb'];

// item 1: every collation, from the handshake, from SET NAMES / SET
// CHARACTER SET and from COM_CHANGE_USER; the text goes both ways.
for (const coll of COLLATIONS) {
  const text = TEXTS[coll[2]];
  add(`handshake-collation/${coll[1]}`, 1, BOTH, async (drv, t) => {
    const c = await drv.connect(t, { collation: coll });
    try {
      const text1 = await c.query(
        'SELECT @@character_set_client AS cs, @@collation_connection AS coll, ? AS echo, ' +
          'HEX(?) AS hx, CHAR_LENGTH(?) AS n',
        [text, text, text],
      );
      const binary = await c.execute('SELECT ? AS echo, CHAR_LENGTH(?) AS n', [text, text]);
      return { text: answer(text1), binary: answer(binary) };
    } finally {
      await c.close();
    }
  });
  add(`change-user-collation/${coll[1]}`, 1, BOTH, async (drv, t) => {
    const c = await drv.connect(t);
    try {
      await c.changeUser({ user: t.user, password: t.password, collation: coll });
      return answer(await c.query('SELECT @@collation_connection AS coll, DATABASE() AS db'));
    } finally {
      await c.close();
    }
  });
}
add('set-names-and-character-set', 1, BOTH, async (drv, t) => {
  const c = await drv.connect(t);
  try {
    const out = [];
    for (const q of ['SET NAMES latin2', 'SET NAMES koi8r COLLATE koi8r_bin', 'SET CHARACTER SET cp1257', 'SET NAMES sjis']) {
      await c.query(q);
      out.push(
        answer(
          await c.query(
            'SELECT @@character_set_client AS cs, @@character_set_results AS rs, @@collation_connection AS coll',
          ),
        ),
      );
    }
    return out;
  } finally {
    await c.close();
  }
});

// item 2: an argument and a result over one 16 MiB wire packet, both
// protocols (the drivers may send the binary one as long data).
add('long-packets', 2, BOTH, async (drv, t) => {
  const c = await drv.connect(t);
  const big = 'x'.repeat(LONG - 3) + 'end';
  const want = crypto.createHash('md5').update(big).digest('hex');
  try {
    // One copy of the argument and no derived table (which the server would
    // write to its tmpdir as a 16 MiB temporary table).
    const text = await c.query('SELECT MD5(?) = ? AS same', [big, want]);
    const binary = await c.execute('SELECT LENGTH(?) AS n', [big]);
    const res = await c.query(`SELECT REPEAT('y', ${LONG}) AS r`);
    return {
      text: answer(text),
      binary: answer(binary),
      result: { length: res[0].r.length, allY: /^y*$/.test(res[0].r) },
    };
  } finally {
    await c.close();
  }
});

// item 3: a statement that is only a comment.
add('comment-only', 3, BOTH, async (drv, t) => {
  const c = await drv.connect(t);
  try {
    const out = {};
    for (const q of ['/* only a comment */', '-- only a comment', '# only a comment', '/* x */ ;']) {
      out[q] = answer(await attempt(() => c.query(q)));
    }
    return out;
  } finally {
    await c.close();
  }
});

// item 4: matched rows with CLIENT_FOUND_ROWS (both drivers ask for it by
// default), changed rows without it.
async function foundRows(drv, t, foundRowsFlag) {
  const c = await drv.connect(t, { foundRows: foundRowsFlag });
  try {
    await c.query('DROP TABLE IF EXISTS node_found_rows');
    await c.query('CREATE TABLE node_found_rows (id INT PRIMARY KEY, v INT NOT NULL)');
    await c.query('INSERT INTO node_found_rows VALUES (1, 1), (2, 2), (3, 3)');
    const text = drv.affected(await c.query('UPDATE node_found_rows SET v = 1 WHERE id IN (1, 2, 3)'));
    const binary = drv.affected(await c.execute('UPDATE node_found_rows SET v = ? WHERE id IN (1, 2, 3)', [2]));
    const none = drv.affected(await c.query('UPDATE node_found_rows SET v = 2'));
    const dup = drv.affected(await c.query('INSERT INTO node_found_rows VALUES (1, 2) ON DUPLICATE KEY UPDATE v = 2'));
    return { text, binary, none, dup };
  } finally {
    await c.close();
  }
}
add('found-rows-on', 4, BOTH, (drv, t) => foundRows(drv, t, true));
add('found-rows-off', 0, BOTH, (drv, t) => foundRows(drv, t, false));

// item 5: MariaDB's extended type metadata (the mariadb driver asks for it
// and maps JSON columns to objects and names the types).
add('extended-metadata', 5, ['mariadb'], async (drv, t) => {
  const c = await drv.connect(t);
  try {
    await c.query('DROP TABLE IF EXISTS node_ext_meta');
    await c.query('CREATE TABLE node_ext_meta (doc JSON, addr INET6, u UUID, p POINT)');
    await c.query(
      "INSERT INTO node_ext_meta VALUES ('{\"a\": [1, 2]}', '::1', '123e4567-e89b-12d3-a456-426655440000', POINT(1, 2))",
    );
    const rows = await c.query('SELECT doc, addr, u, p FROM node_ext_meta');
    const meta = rows.meta.map((m) => ({ name: m.name(), type: m.type, dataTypeName: m.dataTypeName || null }));
    const bin = await c.execute('SELECT doc FROM node_ext_meta');
    return {
      doc: { type: typeof rows[0].doc, value: rows[0].doc },
      docBinary: typeof bin[0].doc,
      point: rows[0].p,
      meta,
    };
  } finally {
    await c.close();
  }
});

// item 7: the session's id is one id wherever the client can see it.
add('connection-id', 7, BOTH, async (drv, t) => {
  const c = await drv.connect(t);
  try {
    const [a] = await c.query('SELECT CONNECTION_ID() AS id');
    const [b] = await c.query('SELECT CONNECTION_ID() + 0 AS id');
    const [d] = await c.query('SELECT CONNECTION_ID() AS id, 1 AS one');
    const [e] = await c.execute('SELECT CONNECTION_ID() AS id');
    const [f] = await c.execute('SELECT CONNECTION_ID() + ? AS id', [0]);
    // The processlist is the server's (the backends' threads) through the
    // proxy, a documented difference (internal/e2e TestProcesslistIsTheBackends).
    const id = String(a.id);
    return {
      handshakeIdIsConnectionId: String(c.threadId()) === id,
      plusZero: String(b.id) === id,
      withOtherColumn: String(d.id) === id,
      prepared: String(e.id) === id,
      preparedExpression: String(f.id) === id,
    };
  } finally {
    await c.close();
  }
});
add('kill-own-connection', 7, BOTH, async (drv, t) => {
  const c = await drv.connect(t);
  try {
    const kill = await attempt(() => c.query('KILL CONNECTION_ID()'));
    const after = await attempt(() => c.query('SELECT 1 AS one'));
    return { kill: kill.error ? kill : 'ok', after: after.error ? 'refused' : 'usable' };
  } finally {
    c.destroy();
  }
});

// item 8: no default schema.
add('no-schema', 8, BOTH, async (drv, t) => {
  const c = await drv.connect(t, { database: null });
  try {
    const db = answer(await c.query('SELECT DATABASE() AS db'));
    const unqualified = answer(await attempt(() => c.query('SELECT COUNT(*) AS n FROM node_found_rows')));
    return { db, unqualified };
  } finally {
    await c.close();
  }
});

// item 9: KILL QUERY from another connection of the same account cancels the
// statement and leaves the session usable.
add('kill-query', 9, BOTH, async (drv, t) => {
  const victim = await drv.connect(t);
  const killer = await drv.connect(t);
  try {
    const running = attempt(() => victim.query('SELECT SLEEP(5) AS s'));
    await new Promise((r) => setTimeout(r, 500));
    const kill = await attempt(() => killer.query(`KILL QUERY ${victim.threadId()}`));
    const interrupted = answer(await running);
    const after = answer(await attempt(() => victim.query('SELECT 1 AS one')));
    return { kill: kill.error ? kill : 'ok', interrupted, after };
  } finally {
    victim.destroy();
    await killer.close();
  }
});

// item 10: session tracking toward a client that asked for it (mysql2
// reports it as stateChanges and follows character_set_client; mariadb
// follows the schema and the character set).
add('session-track', 10, ['mysql2'], async (drv, t) => {
  const c = await drv.connect(t);
  try {
    const out = {};
    for (const q of [
      `USE ${t.otherDatabase || 'e2e_cli'}`,
      "SET time_zone = '+01:00'",
      'SET autocommit = 0',
      'SET NAMES latin1',
    ]) {
      const r = await c.raw.query(q);
      const sc = r[0].stateChanges || null;
      if (sc && sc.systemVariables) {
        // The server's order of the variables follows its hash table, which
        // differs from one server process to the next: compare them sorted.
        const sorted = {};
        for (const k of Object.keys(sc.systemVariables).sort()) sorted[k] = sc.systemVariables[k];
        sc.systemVariables = sorted;
      }
      out[q] = sc;
    }
    // After SET NAMES latin1 the driver encodes with what the server told it.
    out.roundTrip = answer(await c.query('SELECT ? AS s', [TEXTS.latin1]));
    return out;
  } finally {
    await c.close();
  }
});
add('session-track', 10, ['mariadb'], async (drv, t) => {
  const c = await drv.connect(t);
  try {
    await c.query(`USE ${t.otherDatabase || 'e2e_cli'}`);
    const database = c.raw.info.database;
    await c.query('SET NAMES latin1');
    const roundTrip = answer(await c.query('SELECT ? AS s', [TEXTS.latin1]));
    return { database, roundTrip };
  } finally {
    await c.close();
  }
});

// item 11: COM_CHANGE_USER to another account, and to one nobody knows.
add('change-user-other-account', 11, BOTH, async (drv, t) => {
  const c = await drv.connect(t);
  try {
    const r = await attempt(() => c.changeUser({ user: t.other.user, password: t.other.password, database: t.database }));
    const after = answer(await attempt(() => c.query('SELECT DATABASE() AS db, 1 AS one')));
    return { changeUser: r && r.error ? r : 'ok', after };
  } finally {
    c.destroy();
  }
});
add('change-user-unknown-account', 11, BOTH, async (drv, t) => {
  const c = await drv.connect(t);
  try {
    const r = await attempt(() => c.changeUser({ user: 'scalestack_nobody', password: 'wrong' }));
    // Refused either way, but not alike on every server: MariaDB 10.11.14
    // answers ERROR 1045, 10.11.19 an auth switch to a plugin mysql2 lacks
    // (AUTH_SWITCH_PLUGIN_ERROR, connection closed); the proxy answers 1045.
    // What a client must see is the refusal, and that the connection is
    // not left logged in as anyone.
    return { changeUser: r && r.error ? 'refused' : 'ok' };
  } finally {
    c.destroy();
  }
});

// Baselines with no numbered cause: prepared statements, multi-statements,
// transactions and types, so a difference there is found too.
add('prepared-and-types', 0, BOTH, async (drv, t) => {
  const c = await drv.connect(t);
  try {
    const s = await c.prepare(
      "SELECT ? + 1 AS i, CONCAT(?, '!') AS s, CAST(? AS DECIMAL(10,3)) AS d, " +
        "TIMESTAMP('2024-02-29 12:34:56.789') AS ts, NULL AS n",
    );
    const a = answer(await s.execute([41, 'hi', '3.14159']));
    const b = answer(await s.execute([-1, 'ü', '2']));
    await s.close();
    return { a, b };
  } finally {
    await c.close();
  }
});
add('multi-statements-and-transaction', 0, BOTH, async (drv, t) => {
  const c = await drv.connect(t, { multipleStatements: true });
  try {
    const multi = answer(await c.query("SELECT 1 AS a; SELECT 'two' AS b; DO 0"));
    await c.query('DROP TABLE IF EXISTS node_tx');
    await c.query('CREATE TABLE node_tx (id INT PRIMARY KEY) ENGINE=InnoDB');
    await c.query('START TRANSACTION');
    await c.query('INSERT INTO node_tx VALUES (1), (2)');
    await c.query('ROLLBACK');
    const afterRollback = answer(await c.query('SELECT COUNT(*) AS n FROM node_tx'));
    const err = await attempt(() => c.query('SELECT * FROM no_such_table_here'));
    return { multi, afterRollback, err };
  } finally {
    await c.close();
  }
});

// ---- running ----

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function runOn(c, target) {
  try {
    return await withTimeout(c.body(drivers[c.driver], target), CASE_TIMEOUT_MS, c.name);
  } catch (e) {
    return { failed: refusal(e), message: e && e.message };
  }
}

async function main() {
  let cfg;
  try {
    cfg = JSON.parse(process.env.SCALESTACK_COMPAT_CONFIG || '');
  } catch (e) {
    process.stderr.write('compat.cjs: SCALESTACK_COMPAT_CONFIG must hold the JSON configuration\n');
    process.exit(2);
  }
  const skip = new Set(cfg.skipItems || []);
  const only = cfg.only ? new RegExp(cfg.only) : null;
  let same = 0;
  let differ = 0;
  let skipped = 0;
  for (const c of cases) {
    if (skip.has(c.item) || (only && !only.test(c.name))) {
      skipped++;
      continue;
    }
    const t0 = Date.now();
    const direct = await runOn(c, cfg.targets.direct);
    const t1 = Date.now();
    const proxy = await runOn(c, cfg.targets.proxy);
    const ms = [t1 - t0, Date.now() - t1];
    const isSame = JSON.stringify(direct) === JSON.stringify(proxy);
    if (isSame) same++;
    else differ++;
    process.stdout.write(
      JSON.stringify({ name: c.name, driver: c.driver, item: c.item, direct, proxy, same: isSame, ms }) + '\n',
    );
  }
  const note = mariadb ? '' : ` (Node.js ${process.versions.node}: the mariadb driver needs 20 or later, its cases did not run)`;
  process.stderr.write(`compat.cjs: ${same} same, ${differ} different, ${skipped} skipped${note}\n`);
}

main().catch((e) => {
  process.stderr.write(`compat.cjs: ${e && e.stack}\n`);
  process.exit(1);
});
