// Run by the mongodb-init job: Lowcoder's own MongoDB user, readWrite and
// dbAdmin on `lowcoder` only (the architecture's "Lowcoder dedicated
// database"), so that Lowcoder never connects as root. Idempotent: a later
// run sets the password again. Passwords come from the job's environment.
const root = encodeURIComponent(process.env.MONGODB_ROOT_PASSWORD);
const db = connect(`mongodb://admin:${root}@mongodb:27017/admin`).getSiblingDB("lowcoder");
const roles = [
  { role: "readWrite", db: "lowcoder" },
  { role: "dbAdmin", db: "lowcoder" },
];
const pwd = process.env.LOWCODER_DB_PASSWORD;
if (db.getUser("lowcoder_user")) {
  db.updateUser("lowcoder_user", { pwd, roles });
} else {
  db.createUser({ user: "lowcoder_user", pwd, roles });
}
print("lowcoder_user ready");
