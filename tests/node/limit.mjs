// One request that succeeds, then one over the daily limit: prints how long the SDK took to give up.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.TOKEN }); // default: 2 retries
const messages = [{ role: "user", content: "hello" }];
const first = await client.chat.completions.create({ model: process.env.MODEL, messages });
const started = Date.now();
let status = null;
try {
  await client.chat.completions.create({ model: process.env.MODEL, messages });
} catch (error) {
  status = error.status;
}
console.log(JSON.stringify({ first: first.choices[0].message.content, status, seconds: (Date.now() - started) / 1000 }));
