// The console's words, zh-CN first; the English switch is remembered in this browser only.
const WORDS = {
  zh: {
    title: "社区工作台", "nav.home": "首页", "nav.queue": "我的工单队列", logout: "退出",
    "login.title": "登录", "login.staff": "员工账号", "login.phone": "手机验证码", "login.community": "社区",
    "login.username": "用户名", "login.password": "密码", "login.submit": "登录", "login.phoneNumber": "手机号",
    "login.sendCode": "发送验证码", "login.code": "验证码", "login.codeSent": "验证码已发送。",
    "home.title": "今日概况", "queue.title": "我的工单队列", "queue.empty": "队列中没有工单。",
    "filter.status": "状态", "filter.building": "楼栋", "filter.category": "类别", "filter.all": "全部",
    "col.due": "时限", "col.status": "状态", "col.category": "类别", "col.building": "楼栋", "col.description": "内容", "col.scope": "来源",
    "scope.mine": "派给我", "scope.community": "社区待接", "ticket.title": "工单详情", "ticket.actions": "可执行的操作",
    "ticket.timeline": "处理记录", "ticket.noActions": "您的角色在此状态下没有可执行的操作。", "ticket.done": "操作成功。",
    "fig.open": "未结工单", "fig.overdue": "已超时工单", "fig.mine": "派给我的", "fig.community": "社区待接",
    "nav.points": "积分奖惩", "points.title": "积分奖惩", "points.budget": "积分预算", "points.new": "奖励或扣分", "points.pending": "待第二人审批",
    "points.none": "没有待审批的奖惩。", "award.resident": "居民编号", "award.points": "积分（扣分为负数）", "award.pointsShort": "积分",
    "award.reason": "事由", "award.by": "提交人", "award.decide": "审批", "award.byMe": "我", "award.approve": "批准", "award.reject": "驳回",
    "award.pending": "超过审批额度，已提交，等待另一位社工审批。", "col.created": "提交时间",
    "budget.funded": "已拨入", "budget.granted": "已发放", "budget.clawedBack": "已收回", "budget.remaining": "余额",
    "fig.budget": "积分预算余额", "fig.pendingAwards": "待审批奖惩",
    "fig.weekOnTime": "本周按时完成率", "filter.unit": "房号", "export.tickets": "导出本月工单（CSV）", "export.sla": "导出本月管家时效汇总（CSV）",
    "fig.onTime": "本月按时完成率", "fig.rating": "本月平均评分", "fig.status": "状态：",
    overdue: "超时", left: "剩余", submit: "提交", cancelForm: "取消",
    "field.id": "编号", "field.status": "状态", "field.category": "类别", "field.priority": "优先级", "field.description": "内容",
    "field.building": "楼栋", "field.created": "提交时间", "field.due": "时限", "field.assignee": "处理人", "field.quote": "报价（元）",
    "field.followUp": "回访记录", "field.rating": "评分",
    "form.reason": "原因", "form.note": "备注", "form.amount": "金额（元）", "form.waitingOn": "等待", "form.toStaff": "接手员工编号",
    "waiting.resident": "等待住户", "waiting.parts": "等待配件",
    "refused": "服务器拒绝了请求（{status}）：{title}", "refusedRole": "您的账号（{roles}）无权使用此页面。",
    "failed": "请求失败（{status}）：{title}", "offline": "无法连接网关。", "expired": "登录已过期，请重新登录。",
  },
  en: {
    title: "Community console", "nav.home": "Home", "nav.queue": "My ticket queue", logout: "Log out",
    "login.title": "Log in", "login.staff": "Staff account", "login.phone": "Phone code", "login.community": "Community",
    "login.username": "Username", "login.password": "Password", "login.submit": "Log in", "login.phoneNumber": "Phone",
    "login.sendCode": "Send code", "login.code": "Code", "login.codeSent": "Code sent.",
    "home.title": "Today", "queue.title": "My ticket queue", "queue.empty": "No tickets in the queue.",
    "filter.status": "Status", "filter.building": "Building", "filter.category": "Category", "filter.all": "All",
    "col.due": "Due", "col.status": "Status", "col.category": "Category", "col.building": "Building", "col.description": "Description", "col.scope": "From",
    "scope.mine": "Assigned to me", "scope.community": "Community queue", "ticket.title": "Ticket", "ticket.actions": "What you may do",
    "ticket.timeline": "Timeline", "ticket.noActions": "Your role may take no action in this status.", "ticket.done": "Done.",
    "fig.open": "Open tickets", "fig.overdue": "Overdue tickets", "fig.mine": "Assigned to me", "fig.community": "Community queue",
    "nav.points": "Points", "points.title": "Points awards", "points.budget": "Points budget", "points.new": "Award or deduct", "points.pending": "Awaiting a second worker",
    "points.none": "No award awaits approval.", "award.resident": "Resident id", "award.points": "Points (negative to deduct)", "award.pointsShort": "Points",
    "award.reason": "Reason", "award.by": "By", "award.decide": "Decide", "award.byMe": "me", "award.approve": "Approve", "award.reject": "Reject",
    "award.pending": "Above the approval limit: submitted, awaiting another worker.", "col.created": "Filed",
    "budget.funded": "Funded", "budget.granted": "Granted", "budget.clawedBack": "Clawed back", "budget.remaining": "Remaining",
    "fig.budget": "Points budget left", "fig.pendingAwards": "Awards awaiting approval",
    "fig.weekOnTime": "On time this week", "filter.unit": "Unit", "export.tickets": "Export this month's tickets (CSV)", "export.sla": "Export this month's steward SLA summary (CSV)",
    "fig.onTime": "On time this month", "fig.rating": "Average rating this month", "fig.status": "Status: ",
    overdue: "overdue", left: "left", submit: "Submit", cancelForm: "Cancel",
    "field.id": "Id", "field.status": "Status", "field.category": "Category", "field.priority": "Priority", "field.description": "Description",
    "field.building": "Building", "field.created": "Filed", "field.due": "Due", "field.assignee": "Assignee", "field.quote": "Quote (yuan)",
    "field.followUp": "Follow-up", "field.rating": "Rating",
    "form.reason": "Reason", "form.note": "Note", "form.amount": "Amount (yuan)", "form.waitingOn": "Waiting on", "form.toStaff": "Staff id taking over",
    "waiting.resident": "the resident", "waiting.parts": "parts",
    "refused": "The server refused ({status}): {title}", "refusedRole": "Your account ({roles}) may not use this screen.",
    "failed": "Request failed ({status}): {title}", "offline": "Cannot reach the gateway.", "expired": "Your session ended; log in again.",
  },
};

const TERMS = {
  zh: {
    assigned: "已派单", queued: "待接单", accepted: "已接单", quoted: "已报价", approved: "已同意报价", in_progress: "处理中",
    paused: "暂停", completed: "待确认", confirmed: "已确认", closed: "已关闭", cancelled: "已取消",
    repair: "报修", cleaning: "保洁", complaint: "投诉", consultation: "咨询", service: "增值服务", normal: "普通", urgent: "紧急",
    accept: "接单", start: "开始处理", pause: "暂停", resume: "继续", quote: "报价", complete: "完成", follow_up: "回访",
    hand_over: "转交", reassign: "改派", close: "关闭", cancel: "取消工单", submit: "提交", escalate: "升级",
    approve_quote: "同意报价", reject_quote: "拒绝报价", confirm: "确认完成", return_work: "返工", rate: "评价", hurry: "催单",
  },
  en: {
    in_progress: "in progress", follow_up: "follow-up", hand_over: "hand over", approve_quote: "approve quote",
    reject_quote: "reject quote", return_work: "return work",
  },
};

let language = localStorage.getItem("console.lang") === "en" ? "en" : "zh";

export function lang() {
  return language;
}

export function t(key, values = {}) {
  const text = WORDS[language][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

// A status, category, priority or action in the reader's language.
export function term(value) {
  if (value == null) return "";
  return TERMS[language][value] ?? String(value).replaceAll("_", " ");
}

export function translatePage() {
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  const button = document.getElementById("lang");
  button.textContent = language === "zh" ? "English" : "中文";
  button.lang = language === "zh" ? "en" : "zh-CN";
}

export function switchLanguage() {
  language = language === "zh" ? "en" : "zh";
  localStorage.setItem("console.lang", language);
  translatePage();
}
