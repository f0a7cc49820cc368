// What a BullMQ dashboard does with Keel's queue, through Node's own bullmq:
//   node dashboard.js inspect          -> JSON: workers, counts, failed, completed, metrics
//   node dashboard.js retry <job id>   -> JSON: the job retried, as a dashboard's "retry"
// Reads KEEL_REDIS_URL and KEEL_QUEUE_PREFIX; the queue is Keel's `tasks`.
const IORedis = require("ioredis");
const { Queue } = require("bullmq");

async function inspect(queue) {
  const job = (j) => ({
    id: j.id,
    name: j.name,
    data: j.data,
    attemptsMade: j.attemptsMade,
    failedReason: j.failedReason,
    returnvalue: j.returnvalue,
  });
  return {
    workers: (await queue.getWorkers()).map((w) => w.rawname || w.name),
    counts: await queue.getJobCounts(),
    failed: (await queue.getFailed()).map(job),
    completed: (await queue.getCompleted()).map(job),
    metrics: {
      completed: (await queue.getMetrics("completed")).meta.count,
      failed: (await queue.getMetrics("failed")).meta.count,
    },
  };
}

async function retry(queue, id) {
  const job = await queue.getJob(id);
  if (!job) throw new Error(`no job ${id}`);
  await job.retry();
  return { retried: id, state: await queue.getJobState(id) };
}

(async () => {
  const connection = new IORedis(process.env.KEEL_REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue("tasks", { connection, prefix: process.env.KEEL_QUEUE_PREFIX });
  try {
    const [command, id] = process.argv.slice(2);
    const answer = command === "retry" ? await retry(queue, id) : await inspect(queue);
    process.stdout.write(JSON.stringify(answer));
  } finally {
    await queue.close();
    connection.disconnect();
  }
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
