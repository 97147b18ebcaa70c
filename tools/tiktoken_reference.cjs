// The reference side of tools/bench_tokenizer.sh: tiktoken's "gpt2" encoding (npm package
// tiktoken, found through NODE_PATH).
//   node tiktoken_reference.cjs encode OUT_DIR REPEAT FILE...
//     writes OUT_DIR/<file name>.bin (uint16 ids of encode_ordinary) for each file and prints
//     "bytes tokens best_seconds" of REPEAT timed runs over all files, one call per file
//   node tiktoken_reference.cjs random TEXT_OUT IDS_OUT
//     writes a seeded random text of every kind of character and its uint16 ids
const { get_encoding } = require("tiktoken");
const fs = require("fs");
const path = require("path");

const enc = get_encoding("gpt2");
const writeIds = (file, ids) => fs.writeFileSync(file, Buffer.from(Uint16Array.from(ids).buffer));
const [mode, ...args] = process.argv.slice(2);

if (mode === "encode") {
  const [outDir, repeat, ...files] = args;
  const texts = files.map((f) => fs.readFileSync(f, "utf8"));
  const bytes = files.reduce((sum, f) => sum + fs.statSync(f).size, 0);
  let best = Infinity, tokens = 0;
  for (let run = 0; run < Number(repeat); ++run) {
    const start = process.hrtime.bigint();
    tokens = 0;
    for (const text of texts) tokens += enc.encode_ordinary(text).length;
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  files.forEach((f, i) => writeIds(path.join(outDir, path.basename(f) + ".bin"), enc.encode_ordinary(texts[i])));
  console.log(`${bytes} ${tokens} ${best}`);
} else if (mode === "random") {
  // whitespace of all sorts, contractions, letters and digits of many scripts (some new in
  // Unicode 15.1 and 16.0), emoji, controls, and random code points
  let seed = 2357;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const pool = [" ", "  ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\ufeff", "\u000b",
    "\u001c", "'", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "\u2019", "a", "Hello", " the", "\u00e9",
    "\u00df", "\u0416\u0438\u0437\u043d\u044c", "\u65e5\u672c", "\ud55c\uad6d", "\u0345", "\u0903", "\u1c89",
    "\u{105c0}", "\u{2ebf0}", "\u{1f600}", "\u{1f44d}\u{1f3fd}", "\u200d", "0", "42", "\u00bd", "\u00b2", "\u0663",
    "\u216b", "\u{10d40}", "!", "...", "-", "\u2014", "(", "\"", "<|endoftext|>", "\u0000", "\u007f", "\u{e000}",
    "\u0301"];
  let text = "";
  while (text.length < 300000) {
    if (random() < 0.8) {
      text += pool[Math.floor(random() * pool.length)];
      continue;
    }
    let cp = Math.floor(random() * 0x110000);
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;  // no lone surrogates: they are not text
    text += String.fromCodePoint(cp);
  }
  fs.writeFileSync(args[0], text);
  writeIds(args[1], enc.encode_ordinary(text));
} else {
  console.error("usage: tiktoken_reference.cjs encode OUT_DIR REPEAT FILE... | random TEXT_OUT IDS_OUT");
  process.exit(2);
}
