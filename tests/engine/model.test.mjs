// The random-weight model generator (third_party/llama/make_model.cc, run by scripts/llama.sh):
// the same seed writes the same bytes, another seed other weights, and the model is the
// llama architecture at the intended size with the phi-3 vocab's tokenizer and chat template.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCRIPT = path.resolve(HERE, '../../scripts/llama.sh');

async function sha256(file) {
  return createHash('sha256').update(await fs.readFile(file)).digest('hex');
}

function makeModel(out, seed) {
  execFileSync('bash', [SCRIPT, 'make-model', out, String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] });
}

test('same seed, same sha256; another seed, another', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'landlord-model-'));
  try {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => path.join(dir, `${n}.gguf`));
    makeModel(a, 1);
    makeModel(b, 1);
    makeModel(c, 2);
    const [ha, hb, hc] = await Promise.all([a, b, c].map(sha256));
    assert.equal(ha, hb, 'seed 1 twice');
    assert.notEqual(ha, hc, 'seed 1 against seed 2');
    if (process.env.LLAMA_MODEL && path.basename(process.env.LLAMA_MODEL) === 'random-llama-seed1.gguf') {
      assert.equal(await sha256(process.env.LLAMA_MODEL), ha, 'the build`s seed-1 model');
    }
    const { size } = await fs.stat(a);
    assert.ok(size > 35e6 && size < 45e6, `about 40 MB, got ${size}`);
    const head = (await fs.readFile(a)).subarray(0, 1 << 20).toString('latin1');
    assert.equal(head.slice(0, 4), 'GGUF');
    for (const key of ['general.architecture', 'llama.block_count', 'tokenizer.chat_template', '<|assistant|>']) {
      assert.ok(head.includes(key), `the header has ${key}`);
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
